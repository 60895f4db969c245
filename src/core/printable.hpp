#pragma once
// Peer-supplied text made safe for a log line or a terminal: what a client, relay or visitor sends
// must not start a new log line, move the cursor or recolour the screen.
#include <string>
#include <string_view>

namespace porthole::core {

// Printable ASCII is kept; a backslash, control characters, DEL and every byte above 0x7e
// become \xHH, so the result is one line of ASCII that shows exactly which bytes came.
std::string printable(std::string_view peer_text);
// The same, appended to `out` (no string of its own: for lines written per request).
void append_printable(std::string& out, std::string_view peer_text);

}  // namespace porthole::core
