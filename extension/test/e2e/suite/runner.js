// Runs end-to-end tests inside VS Code's extension host and reports to the harness (run.mjs)
// through files in $HOTSWAP_E2E_CONTROL: progress.log (live), requests/ (screenshots and
// terminal reads, answered by the harness) and results.json (written once, last).
"use strict";

const fs = require("fs");
const path = require("path");

const CONTROL = process.env.HOTSWAP_E2E_CONTROL || "";
const ONLY = process.env.HOTSWAP_E2E_ONLY ? new RegExp(process.env.HOTSWAP_E2E_ONLY) : null;
let shotCount = 0;

function writeAtomic(file, text) {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

function log(message) {
  const line = `${new Date().toISOString().slice(11, 23)} ${message}\n`;
  if (CONTROL) {
    fs.appendFileSync(path.join(CONTROL, "progress.log"), line);
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Poll `check` until it returns a truthy value; throw `what` after `timeoutMs`. */
async function waitFor(what, check, timeoutMs = 60000, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    }
    await sleep(intervalMs);
  }
}

let requestCount = 0;

/**
 * Ask the harness for something only the browser side can do, and wait for its answer:
 * "screenshot" (of the page as it is now), "terminal" (the text of the visible terminal) or
 * "press" (a key pressed on the keyboard).
 */
async function request(kind, body = {}, timeoutMs = 30000) {
  if (!CONTROL) {
    throw new Error("HOTSWAP_E2E_CONTROL is not set: run the suite through run.mjs");
  }
  requestCount += 1;
  const dir = path.join(CONTROL, "requests");
  fs.mkdirSync(dir, { recursive: true });
  // The pid keeps the names of a reloaded window's requests apart from the first window's.
  const base = path.join(dir, `${String(requestCount).padStart(3, "0")}-${process.pid}-${kind}`);
  writeAtomic(`${base}.json`, JSON.stringify({ kind, ...body }));
  const answer = `${base}.answer.json`;
  await waitFor(`the harness to answer ${path.basename(base)}`, () => fs.existsSync(answer), timeoutMs);
  const reply = JSON.parse(fs.readFileSync(answer, "utf8"));
  if (reply.error) {
    throw new Error(`harness: ${reply.error}`);
  }
  return reply;
}

/** Save a screenshot of the page as artifacts/NN-name.png; a failure is logged, not thrown. */
async function screenshot(name) {
  shotCount += 1;
  const file = `${String(shotCount).padStart(2, "0")}-${name.replace(/[^\w.-]+/g, "_")}.png`;
  try {
    await request("screenshot", { file });
  } catch (err) {
    log(`screenshot ${file} not taken: ${err.message}`);
  }
}

/** Press `key` in the browser (a real keyboard event, not a command): e.g. "F9". */
async function press(key) {
  await request("press", { key });
}

/** The text of the terminal shown in the panel (the rows on screen, as the user sees them). */
async function terminalText() {
  return (await request("terminal")).text;
}

/** Wait until the visible terminal shows text matching `pattern`; return that text. */
async function waitForTerminal(pattern, timeoutMs = 60000) {
  let last = "";
  try {
    return await waitFor(`${pattern} in the terminal`, async () => {
      last = await terminalText();
      return pattern.test(last) ? last : null;
    }, timeoutMs, 300);
  } catch (err) {
    err.message += `; the terminal showed:\n${last}`;
    throw err;
  }
}

/** The data-* attributes of the elements matching `selector` in any webview of the page. */
async function webviewElements(selector) {
  return (await request("webview", { selector })).elements;
}

/** Click `selector` in a webview, or hover it at (x, y), fractions of its box. */
async function webviewAction(selector, action, x, y) {
  await request("webviewAction", { selector, action, x, y });
}

/** The mouse and keyboard in the page, and what it shows (answered by run.mjs's ui()). */
const ui = {
  /** Click the first visible element matching `selector` whose text matches `text` (a regex source). */
  click: (selector, text, options = {}) => request("click", { selector, text, ...options }, 40000),
  /** Wait until such an element is visible; its text. */
  see: async (selector, text, timeout = 15000) => (await request("see", { selector, text, timeout }, timeout + 15000)).text,
  /** The texts of the visible elements matching `selector`. */
  texts: async (selector) => (await request("texts", { selector })).texts,
  type: (text) => request("type", { text }),
  /** The colour of the first character of the terminal line holding each of `texts`. */
  terminalColours: async (texts) => (await request("terminalColours", { texts })).lines,
  /** Ctrl+click `text` where the terminal shows it (how a terminal link is followed). */
  clickTerminalText: (text) => request("clickTerminalText", { text }),
  /** Run a command from the palette as a user does: F1, its title, Enter. */
  palette: async (title) => {
    await press("F1");
    await ui.see(".quick-input-widget input", "");
    await ui.type(title);
    await ui.see(".quick-input-list .monaco-list-row", escapeRegExp(title));
    await press("Enter");
  },
  /** The status bar item of the extension, as shown. */
  statusBar: () => ui.see(".statusbar-item", "Hot Swap"),
};

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** `promise`, or an error naming `what` if it has not settled after `ms`. */
function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms / 1000} s waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Run `tests` ({name, fn, timeout}) one after the other; each gets {log, screenshot, waitFor, ...}.
 * A test marked `required` that fails skips the rest (e.g. the extension did not activate).
 * A test marked `reloads` reloads the window: the results so far wait in the control folder, and
 * the suite, started again by the reloaded window, goes on after it.
 */
async function runTests(tests) {
  const helpers = { log, screenshot, waitFor, within, sleep, terminalText, waitForTerminal, press, ui, webviewElements, webviewAction };
  const resumed = readResumeState();
  const results = resumed ? resumed.results : [];
  let blocked = null;
  for (const [index, test] of tests.entries()) {
    if (resumed && index < resumed.next) {
      continue;
    }
    const started = Date.now();
    if (ONLY && !ONLY.test(test.name) && !test.required) {
      continue; // HOTSWAP_E2E_ONLY: a subset, while working on it
    }
    if (blocked) {
      results.push({ name: test.name, status: "skipped", error: `"${blocked}" failed` });
      log(`SKIP ${test.name}`);
      continue;
    }
    log(`START ${test.name}`);
    if (test.reloads) {
      const passed = { name: test.name, status: "passed", seconds: 0 };
      writeResumeState({ results: [...results, passed], next: index + 1, since: Date.now(), shots: shotCount + 5 });
    }
    try {
      await within(test.fn(helpers), test.timeout || 120000, `test "${test.name}" to finish`);
      if (test.reloads) {
        throw new Error("the window did not reload");
      }
      results.push({ name: test.name, status: "passed", seconds: (Date.now() - started) / 1000 });
      log(`PASS ${test.name}`);
    } catch (err) {
      clearResumeState();
      const error = (err && err.stack) || String(err);
      results.push({ name: test.name, status: "failed", seconds: (Date.now() - started) / 1000, error });
      log(`FAIL ${test.name}: ${error}`);
      await screenshot(`${test.name}-failed`);
      if (test.required) {
        blocked = test.name;
      }
    }
    if (test.after) {
      await test.after().catch((err) => log(`cleanup of ${test.name} failed: ${err}`));
    }
  }
  clearResumeState();
  if (CONTROL) {
    writeAtomic(path.join(CONTROL, "results.json"), JSON.stringify(results, null, 2));
  }
  return results;
}

const RESUME = () => path.join(CONTROL, "resume.json");

/** The results before a window reload, once (the reloaded suite takes them over). */
function readResumeState() {
  if (!CONTROL || !fs.existsSync(RESUME())) {
    return null;
  }
  const state = JSON.parse(fs.readFileSync(RESUME(), "utf8"));
  const reload = state.results[state.results.length - 1];
  reload.seconds = (Date.now() - state.since) / 1000;
  log(`PASS ${reload.name} (the suite resumed in the reloaded window)`);
  clearResumeState();
  shotCount = state.shots;
  return state;
}

function writeResumeState(state) {
  if (CONTROL) {
    writeAtomic(RESUME(), JSON.stringify(state));
  }
}

function clearResumeState() {
  if (CONTROL) {
    fs.rmSync(RESUME(), { force: true });
  }
}

module.exports = { runTests, request, log, screenshot, waitFor, within, sleep, terminalText, waitForTerminal, press, ui, webviewElements, webviewAction };
