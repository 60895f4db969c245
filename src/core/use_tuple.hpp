#pragma once
// The completion token of the relay's and client's coroutines: an operation's error comes back
// as a value in a tuple, never as an exception.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace porthole {

inline constexpr auto use_tuple = boost::asio::as_tuple(boost::asio::use_awaitable);

}  // namespace porthole
