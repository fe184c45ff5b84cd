// The install offer, driven from the page (run.mjs --driver): VS Code shows modal dialogs only
// when no extension tests run. hotswap.python is a fresh venv without hotswap; Run on Warm GPU
// asks to install the wheel bundled with the extension; the user clicks Install; the script runs.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

const SCRIPT = "hello_fresh.py";

/**
 * A fresh venv of this repo's Python. What hotswap needs besides itself (torch, pyzmq, ...) is
 * made visible to it through a .pth of links to .venv's packages, hotswap's own left out: pip
 * then installs the wheel alone, with no download.
 */
function freshVenv(base, repo) {
  const python = path.join(repo, ".venv/bin/python");
  const venv = path.join(base, "fresh-venv");
  execFileSync(python, ["-m", "venv", venv]);
  const site = (py) => execFileSync(py, ["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], { encoding: "utf8" }).trim();
  const deps = path.join(base, "fresh-deps");
  fs.mkdirSync(deps);
  const skip = /hotswap|^__editable__|^_distutils_hack$|^distutils-precedence\.pth$|^pip(-|$)|^setuptools(-|$)|^pkg_resources$/;
  for (const name of fs.readdirSync(site(python)).filter((n) => !skip.test(n))) {
    fs.symlinkSync(path.join(site(python), name), path.join(deps, name));
  }
  const freshSite = site(path.join(venv, "bin/python"));
  fs.writeFileSync(path.join(freshSite, "hotswap-e2e-deps.pth"), `${deps}\n`);
  return { python: path.join(venv, "bin/python"), site: freshSite };
}

let fresh;

export async function prepare({ world, repo, say }) {
  const wheels = path.join(repo, "extension/wheels");
  if (!fs.existsSync(wheels) || !fs.readdirSync(wheels).some((n) => n.endsWith(".whl"))) {
    throw new Error("no wheel in extension/wheels: make e2e builds it (pip wheel --no-deps -w extension/wheels .)");
  }
  fresh = freshVenv(world.base, repo);
  say(`fresh venv without hotswap: ${fresh.python}`);
  const settingsFile = path.join(world.workspace, ".vscode/settings.json");
  const settings = JSON.parse(fs.readFileSync(settingsFile, "utf8"));
  settings["hotswap.python"] = fresh.python;
  fs.writeFileSync(settingsFile, JSON.stringify(settings, null, 2));
  const script = "import hotswap\n\nhotswap.warm('numbers', lambda: [1, 2, 3])\nprint('fresh venv ok', hotswap.__file__, flush=True)\n";
  fs.writeFileSync(path.join(world.workspace, SCRIPT), script);
}

async function palette(page, title) {
  await page.keyboard.press("F1");
  await page.locator(".quick-input-widget input").filter({ visible: true }).waitFor({ timeout: 15000 });
  await page.keyboard.type(title, { delay: 20 });
  await page.locator(".quick-input-list .monaco-list-row").filter({ hasText: title }).first().waitFor({ timeout: 15000 });
  await page.keyboard.press("Enter");
}

async function installOfferAccepted({ page, sleep, artifacts, shoot, terminalText }) {
  await page.locator(".statusbar-item").filter({ hasText: "Hot Swap" }).first().waitFor({ timeout: 60000 });
  await page.keyboard.press("Control+P");
  await page.locator(".quick-input-widget input").filter({ visible: true }).waitFor({ timeout: 15000 });
  await page.keyboard.type(SCRIPT, { delay: 20 });
  await page.locator(".quick-input-list .monaco-list-row").filter({ hasText: SCRIPT }).first().waitFor({ timeout: 15000 });
  await page.keyboard.press("Enter");
  await page.locator(".tab.active").filter({ hasText: SCRIPT }).waitFor({ timeout: 15000 });
  await palette(page, "Hot Swap: Run on Warm GPU");
  const dialog = page.locator(".monaco-dialog-box").filter({ hasText: "Install it from the wheel bundled with the extension" });
  await dialog.waitFor({ timeout: 60000 });
  const asked = await dialog.innerText();
  await shoot(page, path.join(artifacts, "01-install-offer.png"));
  for (const expected of [fresh.python, "This will run:", "-m pip install", "hotswap-"]) {
    if (!asked.includes(expected)) {
      throw new Error(`the offer does not say ${expected}:\n${asked}`);
    }
  }
  await dialog.locator(".monaco-button").filter({ hasText: /^Install$/ }).click();
  const deadline = Date.now() + 180000;
  let shown = "";
  while (!/fresh venv ok/.test(shown)) {
    if (Date.now() > deadline) {
      throw new Error(`the run did not print its line after the install; the terminal showed:\n${shown}`);
    }
    await sleep(500);
    shown = await terminalText();
  }
  await shoot(page, path.join(artifacts, "02-installed-and-ran.png"));
  const line = shown.split("\n").find((l) => l.includes("fresh venv ok"));
  if (!line.includes(fresh.site)) {
    throw new Error(`the run did not import the hotswap pip installed into the fresh venv: ${line}`);
  }
  if (!fs.existsSync(path.join(fresh.site, "hotswap", "__init__.py"))) {
    throw new Error("hotswap is not in the fresh venv's site-packages");
  }
}

function warmKeys(world) {
  const args = ["-m", "hotswap", "status", "--json", "--workspace", world.workspace];
  const status = JSON.parse(execFileSync(fresh.python, args, { encoding: "utf8" }));
  return status.workers.flatMap((w) => w.warm.map((e) => e.key));
}

/** Release Warm Objects from the palette asks in a modal dialog; Release All empties the cache. */
async function releaseAllAfterTheModal({ page, world, sleep, artifacts, shoot }) {
  await page.locator(".statusbar-item").filter({ hasText: "1 warm" }).first().waitFor({ timeout: 30000 });
  if (warmKeys(world).join() !== "numbers") {
    throw new Error(`expected the warm object numbers, the daemon has ${warmKeys(world)}`);
  }
  await palette(page, "Hot Swap: Release Warm Objects");
  const dialog = page.locator(".monaco-dialog-box").filter({ hasText: "Release every warm object?" });
  await dialog.waitFor({ timeout: 30000 });
  await shoot(page, path.join(artifacts, "03-release-all-asks.png"));
  await dialog.locator(".monaco-button").filter({ hasText: /^Release All$/ }).click();
  const deadline = Date.now() + 30000;
  while (warmKeys(world).length > 0) {
    if (Date.now() > deadline) {
      throw new Error(`still warm after Release All: ${warmKeys(world)}`);
    }
    await sleep(300);
  }
  await page.locator(".statusbar-item").filter({ hasText: "Hot Swap" }).filter({ hasNotText: "warm" }).first().waitFor({ timeout: 15000 });
  await shoot(page, path.join(artifacts, "04-released-all.png"));
}

async function step(ctx, name, action) {
  const started = Date.now();
  try {
    await action(ctx);
    return { name, status: "passed", seconds: (Date.now() - started) / 1000 };
  } catch (err) {
    await ctx.shoot(ctx.page, path.join(ctx.artifacts, `${name.slice(0, 40).replace(/\W+/g, "_")}-failed.png`));
    return { name, status: "failed", seconds: (Date.now() - started) / 1000, error: err.stack || String(err) };
  }
}

export async function run(ctx) {
  const install = await step(ctx, "install offer: Install puts the bundled wheel into a fresh venv, and the run works", installOfferAccepted);
  if (install.status !== "passed") {
    return [install, { name: "Release Warm Objects asks, Release All empties the cache", status: "skipped", error: "the install failed" }];
  }
  return [install, await step(ctx, "Release Warm Objects asks, Release All empties the cache", releaseAllAfterTheModal)];
}
