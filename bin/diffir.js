#!/usr/bin/env node
// The `diffir` command. A committed, executable shim: the CLI itself is compiled into
// dist/ by `npm ci` (prepare), after npm has linked the bin, so the bin cannot point there.
import '../dist/src/cli/main.js';
