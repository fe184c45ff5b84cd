/**
 * Which Python starts the backend: the `hotswap.python` setting, else the Python extension's
 * active environment, else python3; and making sure `import hotswap` works there.
 */

import { execFile, spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import * as path from "node:path";
import * as vscode from "vscode";
import { UserError } from "./errors";
import { Settings } from "./settings";

export interface Interpreter {
  path: string;
  /** Where the choice came from, in the user's words. */
  source: string;
}

/** The subset of the Python extension's public API we use (ms-python.python). */
interface PythonExtensionApi {
  environments?: {
    getActiveEnvironmentPath(resource?: vscode.Uri): { path: string };
    resolveEnvironment(env: { path: string } | string): Promise<{ executable: { uri?: vscode.Uri } } | undefined>;
  };
}

export async function findInterpreter(folder: vscode.Uri, settings: Settings, log: vscode.LogOutputChannel): Promise<Interpreter> {
  if (settings.python) {
    return { path: expandHome(settings.python), source: "the hotswap.python setting" };
  }
  const fromExtension = await pythonExtensionInterpreter(folder, log);
  if (fromExtension !== undefined) {
    return { path: fromExtension, source: "the Python extension's selected interpreter" };
  }
  return { path: "python3", source: "python3 on PATH (no hotswap.python setting, no Python extension)" };
}

async function pythonExtensionInterpreter(folder: vscode.Uri, log: vscode.LogOutputChannel): Promise<string | undefined> {
  const extension = vscode.extensions.getExtension<PythonExtensionApi>("ms-python.python");
  if (extension === undefined) {
    return undefined;
  }
  try {
    const api = extension.isActive ? extension.exports : await extension.activate();
    const active = api.environments?.getActiveEnvironmentPath(folder);
    if (active === undefined) {
      return undefined;
    }
    const resolved = await api.environments?.resolveEnvironment(active);
    return resolved?.executable.uri?.fsPath ?? active.path;
  } catch (err) {
    log.warn(`the Python extension did not tell its interpreter: ${String(err)}`);
    return undefined;
  }
}

function expandHome(file: string): string {
  return file.startsWith("~/") ? path.join(process.env.HOME ?? "~", file.slice(2)) : file;
}

/** hotswap's version in `python`, or undefined with the reason it cannot be imported. */
export function hotswapVersion(python: string): Promise<{ version?: string; problem?: string }> {
  return new Promise((resolve) => {
    execFile(python, ["-c", "import hotswap; print(hotswap.__version__)"], { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err === null) {
        resolve({ version: stdout.trim() });
      } else {
        const lines = (stderr || err.message).trim().split("\n");
        resolve({ problem: lines[lines.length - 1] });
      }
    });
  });
}

/** The backend wheel shipped inside the VSIX (extension/wheels/), if this build has one. */
export function bundledWheel(extensionPath: string): string | undefined {
  const folder = path.join(extensionPath, "extension", "wheels");
  if (!existsSync(folder)) {
    return undefined;
  }
  const wheels = readdirSync(folder).filter((name) => name.endsWith(".whl")).sort();
  return wheels.length ? path.join(folder, wheels[wheels.length - 1]) : undefined;
}

/**
 * Resolve once `import hotswap` works in `python`; if it does not, offer to install the bundled
 * wheel there (saying what will run), else explain what to do.
 */
export async function ensureHotswap(python: Interpreter, extensionPath: string, log: vscode.LogOutputChannel): Promise<void> {
  const found = await hotswapVersion(python.path);
  if (found.version !== undefined) {
    log.info(`hotswap ${found.version} found in ${python.path} (${python.source})`);
    return;
  }
  log.warn(`hotswap is not importable by ${python.path} (${python.source}): ${found.problem}`);
  const choose = { title: "Choose Interpreter", command: "workbench.action.openSettings", args: ["hotswap.python"] };
  const wheel = bundledWheel(extensionPath);
  if (wheel === undefined) {
    throw new UserError(
      `hotswap is not installed for ${python.path} (${python.source}). Install it there (pip install hotswap) or set hotswap.python to an interpreter that has it.`,
      [choose],
    );
  }
  const command = `${python.path} -m pip install ${wheel}`;
  const install = "Install";
  const picked = await vscode.window.showWarningMessage(
    `Hot Swap needs its backend in ${python.path} (${python.source}). Install it from the wheel bundled with the extension?`,
    { modal: true, detail: installDetail(command) },
    install,
    "Choose Another Interpreter",
  );
  if (picked === "Choose Another Interpreter") {
    void vscode.commands.executeCommand("workbench.action.openSettings", "hotswap.python");
  }
  if (picked !== install) {
    throw new UserError(`the backend is not installed for ${python.path}; nothing was run.`, [choose]);
  }
  await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Hot Swap: installing the backend into ${python.path}` },
    () => pipInstall(python.path, wheel, log),
  );
}

/** What installing the wheel runs and what pip fetches with it, told before the user agrees. */
function installDetail(command: string): string {
  return (
    `This will run:\n${command}\n\n` +
    "pip also installs what hotswap requires and this environment lacks (torch, transformers, pyzmq, debugpy and a few " +
    "small packages) from its package index: without torch already there, that is a download of several GB."
  );
}

function pipInstall(python: string, wheel: string, log: vscode.LogOutputChannel): Promise<void> {
  log.info(`running ${python} -m pip install ${wheel}`);
  return new Promise((resolve, reject) => {
    const child = spawn(python, ["-m", "pip", "install", wheel], { stdio: ["ignore", "pipe", "pipe"] });
    let last = "";
    const onData = (data: Buffer): void => {
      const text = data.toString().trimEnd();
      if (text) {
        log.info(text);
        last = text.split("\n").pop() ?? last;
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("error", (err) => reject(new UserError(`cannot run pip: ${err.message}`)));
    child.on("exit", (code) => {
      if (code === 0) {
        resolve();
      } else {
        const output = { title: "Show Output", command: "hotswap.showOutput" };
        reject(new UserError(`installing the backend failed (pip exited with ${code}): ${last}`, [output]));
      }
    });
  });
}
