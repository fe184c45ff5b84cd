/**
 * What the Hot Swap terminal and status bar say: run headers and footers, sizes, warm objects,
 * and stream bytes turned into terminal text. No vscode here.
 */

import { TextDecoder } from "node:util";
import type { Memory, Survivor, WarmEntry } from "./protocol";

const DIM = "\x1b[2m";
const BOLD = "\x1b[1m";
const RED = "\x1b[31m";
const GREEN = "\x1b[32m";
const YELLOW = "\x1b[33m";
const CYAN = "\x1b[36m";
const MAGENTA = "\x1b[35m";
const RESET = "\x1b[0m";
const DEFAULT_FOREGROUND = "\x1b[39m";

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) {
    return "-";
  }
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function formatSeconds(seconds: number): string {
  if (seconds < 1) {
    return `${Math.round(seconds * 1000)} ms`;
  }
  if (seconds < 60) {
    return `${seconds.toFixed(2)} s`;
  }
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

export function formatParameters(n: number | null | undefined): string {
  if (n === null || n === undefined) {
    return "";
  }
  if (n >= 1e9) {
    return `${(n / 1e9).toFixed(1)}B params`;
  }
  if (n >= 1e6) {
    return `${(n / 1e6).toFixed(1)}M params`;
  }
  return `${n.toLocaleString("en-US")} params`;
}

/** "2 warm · 1.2 GiB" for the status bar, "" when nothing is warm. */
export function describeWarm(entries: readonly WarmEntry[]): string {
  if (entries.length === 0) {
    return "";
  }
  const bytes = entries.reduce((sum, e) => sum + (e.bytes ?? 0), 0);
  return `${entries.length} warm · ${formatBytes(bytes)}`;
}

export interface HeaderInfo {
  entry: string;
  args: readonly string[];
  warmKeys: readonly string[];
  /** From the click (or save) to the script starting, in seconds. */
  startSeconds: number;
  debug: boolean;
  note?: string;
  /** Words the terminal links to the Metrics view, shown at the end of the first line. */
  metricsLink?: string;
}

export function header(info: HeaderInfo): string {
  const command = [info.entry, ...info.args].map(quoteArg).join(" ");
  const verb = info.debug ? "debugging" : "running";
  const warm = info.warmKeys.length ? `warm: ${info.warmKeys.join(", ")}` : "nothing warm yet";
  const link = info.metricsLink ? ` ${DIM}·${RESET} ${info.metricsLink}` : "";
  const lines = [`${CYAN}${BOLD}▶ ${verb} ${command}${RESET}${DIM} · ${warm} · started in ${formatSeconds(info.startSeconds)}${RESET}${link}`];
  if (info.note) {
    lines.push(`${YELLOW}${info.note}${RESET}`);
  }
  return lines.join("\r\n") + "\r\n";
}

/**
 * A header line for what hotswap did for the run (run_notice): in its own colour, on a line of
 * its own, never mixed into the script's stderr. `midLine`: the script's output is mid-line.
 */
export function notice(kind: string, text: string, midLine = false): string {
  const color = kind === "rebuilt" || kind === "evicted" || kind === "reloaded" ? YELLOW : MAGENTA;
  return `${midLine ? "\r\n" : ""}${color}${DIM}↻ ${text}${RESET}\r\n`;
}

/** "memory: peak 1.2 GiB · 310.0 MiB held beyond warm objects" for the footer, or "". */
export function memoryLine(memory: Memory | undefined): string {
  if (memory?.run_peak_rss === undefined || memory.rss_beyond_warm === undefined) {
    return "";
  }
  // Most of what is held is the interpreter and its libraries: say what this run added.
  const left = memory.rss_left === undefined ? "" : ` (${memory.rss_left < 0 ? "-" : "+"}${formatBytes(Math.abs(memory.rss_left))} by this run)`;
  let line = `memory: peak ${formatBytes(memory.run_peak_rss)} · ${formatBytes(memory.rss_beyond_warm)} held beyond warm objects${left}`;
  if (memory.run_peak_cuda_allocated !== undefined) {
    line += ` · cuda peak ${formatBytes(memory.run_peak_cuda_allocated)}, ${formatBytes(memory.cuda_beyond_warm)} beyond warm, ${formatBytes(memory.cuda_reserved)} reserved`;
  }
  return line;
}

/** "left alive: torch.Tensor float32[4096] cpu, 16.0 MiB, held by lib.CACHE['x']". */
export function survivorLine(survivor: Survivor): string {
  const held = survivor.held_by ? `, held by ${survivor.held_by}` : "";
  return `left alive: ${survivor.type} ${survivor.detail}, ${formatBytes(survivor.bytes)}${held}`;
}

export interface FooterInfo {
  exitCode: number;
  duration: number;
  reason: string;
  message: string;
  warmReused: readonly string[];
  warmLost: boolean;
  memory?: Memory;
  survivors?: readonly Survivor[];
}

export function footer(info: FooterInfo): string {
  const color = info.exitCode === 0 ? GREEN : info.reason === "exited" ? RED : YELLOW;
  const how = info.reason === "exited" ? `exit code ${info.exitCode}` : `${info.reason} (exit code ${info.exitCode})`;
  const reused = info.warmReused.length ? ` · reused: ${info.warmReused.join(", ")}` : "";
  const lines = [`${color}■ ${how}${RESET}${DIM} · ${formatSeconds(info.duration)}${reused}${RESET}`];
  if (info.message && info.reason !== "exited") {
    lines.push(`${YELLOW}${info.message}${RESET}`);
  }
  const memory = memoryLine(info.memory);
  if (memory) {
    lines.push(`${DIM}${memory}${RESET}`);
  }
  (info.survivors ?? []).forEach((s) => lines.push(`${YELLOW}${DIM}${survivorLine(s)}${RESET}`));
  return lines.join("\r\n") + "\r\n\r\n";
}

function quoteArg(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`;
}

/**
 * A run's stdout and stderr as terminal text: UTF-8 decoded across chunk boundaries (a
 * character may be split between two stream events), "\n" turned into "\r\n", and stderr in
 * red so it stands apart from stdout (the script's own colours inside it still show). On rank
 * workers, as torchrun --tee and `hotswap run` show them: rank 0 as it comes, every other
 * rank's lines prefixed `[rankK]: ` and held until their newline, so a prefix starts a line.
 */
export class TerminalText {
  private readonly decoders = new Map<string, TextDecoder>();
  private readonly partial = new Map<string, string>();
  /** By stream and rank: the start of an escape sequence a chunk of stderr ended in. */
  private readonly partialEscape = new Map<string, string>();

  /** `showRank`: the only rank shown (-1 or undefined: every rank). */
  constructor(private readonly showRank = -1) {}

  write(stream: string, data: Uint8Array, rank?: number): string {
    if (rank !== undefined && this.showRank >= 0 && rank !== this.showRank) {
      return "";
    }
    const key = `${stream}:${rank ?? 0}`;
    let decoder = this.decoders.get(key);
    if (decoder === undefined) {
      decoder = new TextDecoder("utf-8");
      this.decoders.set(key, decoder);
    }
    const text = decoder.decode(data, { stream: true });
    return this.styled(key, rank ? this.prefixed(key, rank, text) : text);
  }

  private prefixed(key: string, rank: number, text: string): string {
    const lines = ((this.partial.get(key) ?? "") + text).split("\n");
    const rest = lines.pop() ?? "";
    if (rest) {
      this.partial.set(key, rest);
    } else {
      this.partial.delete(key);
    }
    return lines.map((line) => rankLine(rank, line) + "\n").join("");
  }

  /** What is left in the decoders (and ranks' unfinished lines) at the end of a run. */
  flush(): string {
    const rest = [...this.decoders.entries()].map(([key, d]) => this.styled(key, d.decode(), true)).join("");
    const lines = [...this.partial].map(([key, line]) => this.styled(key, rankLine(Number(key.split(":")[1]), line) + "\n", true));
    this.decoders.clear();
    this.partial.clear();
    return rest + lines.join("");
  }

  /** `key`: stream:rank. stderr in red, line by line. */
  private styled(key: string, text: string, last = false): string {
    if (!key.startsWith("stderr:")) {
      return toTerminal(text);
    }
    let whole = (this.partialEscape.get(key) ?? "") + text;
    // Colouring inside a split escape sequence would break it: keep its start for the next chunk.
    const partial = last ? null : /\x1b(\[[0-9;?]*)?$/.exec(whole);
    this.partialEscape.set(key, partial ? partial[0] : "");
    whole = partial ? whole.slice(0, partial.index) : whole;
    return toTerminal(whole).replace(/[^\r\n]+/g, (line) => RED + line + DEFAULT_FOREGROUND);
  }
}

/** torch's own excepthook already prefixes a rank's traceback lines: not twice. */
function rankLine(rank: number, line: string): string {
  const prefix = `[rank${rank}]: `;
  return line.startsWith(prefix) ? line : prefix + line;
}

export function toTerminal(text: string): string {
  return text.replace(/\r?\n/g, "\r\n");
}

/** Where the cursor is not at the start of a line after `text`, a footer needs a newline first. */
export function endsMidLine(text: string): boolean {
  return text.length > 0 && !text.endsWith("\n");
}
