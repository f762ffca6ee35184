#!/usr/bin/env bash
# Renders the phone bridge's voice prompts (server/src/phone/prompts/*.ul,
# 8 kHz G.711 µ-law, embedded in the binary by phone/prompts.rs) with
# espeak-ng and ffmpeg. A developer's tool: the build uses the committed
# files and runs nothing. Rerun after changing a text here; listen with
#   ffplay -f mulaw -ar 8000 -ac 1 server/src/phone/prompts/enter_pin.ul
set -euo pipefail
cd "$(dirname "$0")/../server/src/phone/prompts"
say() {
  # A slightly slower voice than espeak-ng's default, its leading and
  # trailing silence cut, then 8 kHz µ-law (ffmpeg's resampler low-passes
  # before it decimates).
  local trim="silenceremove=start_periods=1:start_threshold=-50dB"
  espeak-ng -v en-us -s 150 -w /dev/stdout "$2" |
    ffmpeg -loglevel error -y -i - -af "$trim,areverse,$trim,areverse" \
      -ar 8000 -ac 1 -f mulaw "$1.ul"
}
say enter_pin "Welcome. Please enter the meeting PIN, followed by the hash key."
say wrong_pin "That PIN is not right. Please try again."
say joining "Thank you. You are joining the meeting now."
say goodbye "Sorry, no valid PIN was entered. Goodbye."
