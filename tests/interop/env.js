// Reads `.env` in the working directory into process.env, as the `dotenv` package's config()
// does for the simple files node folders hold: `KEY=VALUE` lines, `#` comments, optional
// quotes, and a variable already set in the environment is left as it is.
// Part of the test double written from PROTOCOL.md; not the curriculum's code.

'use strict';

const fs = require('fs');

function loadEnv(path = '.env') {
  let text;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (error) {
    if (error.code === 'ENOENT') return;
    throw error;
  }
  for (const line of text.split(/\r?\n/)) {
    const match = /^\s*(?:export\s+)?([\w.-]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (!match) continue;
    let [, key, value] = match;
    const quoted = /^(['"`])(.*)\1$/.exec(value);
    if (quoted) {
      value = quoted[2];
    } else {
      value = value.replace(/\s+#.*$/, '');
    }
    if (!(key in process.env)) process.env[key] = value;
  }
}

module.exports = { loadEnv };
