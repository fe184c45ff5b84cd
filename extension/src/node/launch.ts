/**
 * What one run asks of the backend (the `run` request), and the debugpy attach configuration
 * built from the backend's `debug_ready`. No vscode here.
 */

import type { DebugReadyBody, PathMapping, RunBody } from "./protocol";

/** A run as the user asked for it: which script, with what, where. */
export interface LaunchSpec {
  /** The workspace root as the daemon is told it (a real path). */
  root: string;
  /** The script, absolute. */
  entry: string;
  args: string[];
  /** Absolute; the workspace root unless the launch configuration says otherwise. */
  cwd: string;
  /** Added to (or replacing) the extension host's environment. */
  env: Record<string, string>;
  debug: boolean;
  justMyCode: boolean;
  /** Rank workers (torchrun's --nproc-per-node); 0: the workspace's [tool.hotswap] choice. */
  nprocPerNode?: number;
  /** The one rank whose output the terminal shows; -1 or absent: every rank. */
  showRank?: number;
}

// The extension host's own variables describe VS Code's node process, not a terminal.
const HOST_ONLY = /^(ELECTRON_|VSCODE_(?!GIT_)|APPLICATION_INSIGHTS_)/;

/** The whole environment the script sees, as a terminal of this window would give it. */
export function runEnvironment(base: NodeJS.ProcessEnv, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(base)) {
    if (value !== undefined && !HOST_ONLY.test(key)) {
      env[key] = value;
    }
  }
  env.TERM ??= "xterm-256color";
  env.COLORTERM ??= "truecolor";
  return { ...env, ...extra };
}

/** The `run` request for `spec` on workspace `state`, under the run id the client chose. */
export function runRequest(spec: LaunchSpec, state: string | undefined, baseEnv: NodeJS.ProcessEnv, runId: string): RunBody {
  const body: RunBody = {
    run_id: runId,
    entry: spec.entry,
    args: spec.args,
    cwd: spec.cwd,
    env: runEnvironment(baseEnv, spec.env),
    root: spec.root,
    state,
  };
  if (spec.nprocPerNode) {
    body.nproc_per_node = spec.nprocPerNode;
  }
  if (spec.debug) {
    body.debug = true;
    body.wait = true; // breakpoints are set before the script runs
    body.just_my_code = spec.justMyCode;
  }
  return body;
}

/** What debug.ts hands VS Code in place of the launch configuration. */
export interface AttachConfiguration {
  type: string;
  name: string;
  request: "attach";
  connect: { host: string; port: number };
  justMyCode: boolean;
  pathMappings: PathMapping[];
  subProcess: false;
  redirectOutput: false;
  showReturnValue: true;
  hotswapRunId: string | null;
  [key: string]: unknown;
}

/**
 * A `launch` configuration turned into a debugpy attach to the port the backend announced:
 * VS Code then speaks DAP straight to debugpy's own server in the runner worker.
 */
export function attachConfiguration(
  launch: { type: string; name: string; [key: string]: unknown },
  ready: DebugReadyBody,
): AttachConfiguration {
  // What only the launch side means (the backend has it already) does not go to debugpy.
  const { program: _program, args: _args, env: _env, cwd: _cwd, ...kept } = launch;
  return {
    ...kept,
    type: launch.type,
    name: launch.name,
    request: "attach",
    connect: { host: ready.host, port: ready.port },
    justMyCode: ready.just_my_code,
    pathMappings: ready.path_mappings,
    subProcess: false,
    redirectOutput: false, // output already reaches the Hot Swap terminal
    showReturnValue: true,
    hotswapRunId: ready.run_id,
  };
}
