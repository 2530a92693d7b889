# The CLI's own behaviour: help, version, unknown commands.
expect_out "help lists commands" "commands:" "$CTUNE" --help
expect_out "version" "ctune " "$CTUNE" --version
expect_fail "unknown command" "unknown command 'frobnicate'" "$CTUNE" frobnicate
