#pragma once
// Policies that answer from the config alone: redirect, https_only, respond, max_body.
#include "config/policy_config.hpp"
#include "policy/header_rules.hpp"
#include "policy/policy.hpp"

#include <cstdint>

namespace porthole::policy {

class redirect final : public policy {
public:
    explicit redirect(const config::redirect_settings& s) : to_(s.to), status_(s.status) {}
    std::optional<answer> on_request(request_context& r) override;
    std::string_view type() const override { return "redirect"; }

private:
    value_template to_;
    unsigned status_;
};

// A plain-HTTP visitor goes to the same URL over HTTPS, on the relay's HTTPS port.
class https_only final : public policy {
public:
    explicit https_only(const config::https_only_settings& s) : status_(s.status) {}
    std::optional<answer> on_request(request_context& r) override;
    std::string_view type() const override { return "https_only"; }

private:
    unsigned status_;
};

class respond final : public policy {
public:
    explicit respond(const config::respond_settings& s) : s_(s) {}
    std::optional<answer> on_request(request_context& r) override;
    std::string_view type() const override { return "respond"; }

private:
    config::respond_settings s_;
};

// 413 for a request whose Content-Length is over the size; a chunked body is cut where it
// passes it (the edge enforces request_context::body_limit).
class max_body final : public policy {
public:
    explicit max_body(const config::max_body_settings& s) : size_(s.size) {}
    std::optional<answer> on_request(request_context& r) override;
    std::string_view type() const override { return "max_body"; }

private:
    std::uint64_t size_;
};

}  // namespace porthole::policy
