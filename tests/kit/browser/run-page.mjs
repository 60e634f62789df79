// Open one page in the machine's headless Chromium and report what the page reports.
//
//   node run-page.mjs <url> [timeout_ms]        (default timeout 30000)
//
// The page signals completion by setting `window.__done = true` and leaves its verdict in
// `window.__result`; this prints `JSON.stringify(window.__result)` as the only line on
// stdout, and every console message and page error of the page on stderr. Exit code 0
// when the page finished (whatever its result says: the test judges it), 1 on timeout,
// a crash or a navigation failure.
//
// Chromium: $CHROMIUM, else /usr/bin/chromium (never a downloaded browser). Fake media:
// a synthetic microphone and camera, permissions granted without a prompt; with
// FAKE_AUDIO_WAV=<file.wav> the microphone plays that file instead of a beep. A fresh
// profile in a temporary directory per run, removed afterwards.
//
// playwright-core is resolved from $SWITCHBOARD_TEST_NODE/node_modules (default
// ~/.cache/switchboard/node), where scripts/install-test-deps puts it with `npm ci`.
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir, homedir } from 'node:os';
import { join } from 'node:path';

const [url, timeoutArg] = process.argv.slice(2);
if (!url) {
  console.error('usage: node run-page.mjs <url> [timeout_ms]');
  process.exit(2);
}
const timeout = Number(timeoutArg ?? 30000);
const nodeDir = process.env.SWITCHBOARD_TEST_NODE || join(homedir(), '.cache/switchboard/node');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

function die(msg) {
  console.error(`run-page: ${msg}`);
  process.exit(1);
}

let chromium;
try {
  const require = createRequire(join(nodeDir, 'package.json'));
  ({ chromium } = require('playwright-core'));
} catch (e) {
  die(`playwright-core is not installed in ${nodeDir} (run scripts/install-test-deps): ${e.message}`);
}
if (!existsSync(executablePath)) die(`no Chromium at ${executablePath} (set CHROMIUM or run scripts/install-test-deps)`);

const args = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
];
if (process.env.FAKE_AUDIO_WAV) args.push(`--use-file-for-fake-audio-capture=${process.env.FAKE_AUDIO_WAV}`);

const profile = mkdtempSync(join(tmpdir(), 'switchboard-chromium-'));
let context;
let code = 1;
try {
  // A persistent context is the only way to give Chromium our own --user-data-dir.
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args,
    ignoreDefaultArgs: ['--headless'],
    timeout,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => console.error(`[console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => console.error(`[pageerror] ${e.message}`));
  page.on('crash', () => console.error('[crash] the page crashed'));
  await page.goto(url, { timeout });
  await page.waitForFunction(() => window.__done === true, null, { timeout, polling: 100 });
  const result = await page.evaluate(() => JSON.stringify(window.__result ?? null));
  process.stdout.write(result + '\n');
  code = 0;
} catch (e) {
  console.error(`run-page: ${e.message}`);
  if (context) {
    // Whatever the page got to, for the failure report.
    try {
      const partial = await context.pages()[0]?.evaluate(() => JSON.stringify(window.__result ?? null));
      if (partial) console.error(`run-page: partial __result ${partial}`);
    } catch {}
  }
} finally {
  try {
    await context?.close();
  } catch {}
  rmSync(profile, { recursive: true, force: true });
}
process.exit(code);
