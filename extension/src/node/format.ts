/**
 * What the Hot Swap terminal and status bar say: run headers and footers, sizes, warm objects,
 * and stream bytes turned into terminal text. No vscode here.
 */

import { TextDecoder } from "node:util";
import type { WarmEntry } from "./protocol";

const DIM = "\x1b[2m";
const BOLD = "\x1b[1m";
const RED = "\x1b[31m";
const GREEN = "\x1b[32m";
const YELLOW = "\x1b[33m";
const CYAN = "\x1b[36m";
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
}

export function header(info: HeaderInfo): string {
  const command = [info.entry, ...info.args].map(quoteArg).join(" ");
  const verb = info.debug ? "debugging" : "running";
  const warm = info.warmKeys.length ? `warm: ${info.warmKeys.join(", ")}` : "nothing warm yet";
  const lines = [`${CYAN}${BOLD}▶ ${verb} ${command}${RESET}${DIM} · ${warm} · started in ${formatSeconds(info.startSeconds)}${RESET}`];
  if (info.note) {
    lines.push(`${YELLOW}${info.note}${RESET}`);
  }
  return lines.join("\r\n") + "\r\n";
}

export interface FooterInfo {
  exitCode: number;
  duration: number;
  reason: string;
  message: string;
  warmReused: readonly string[];
  warmLost: boolean;
}

export function footer(info: FooterInfo): string {
  const color = info.exitCode === 0 ? GREEN : info.reason === "exited" ? RED : YELLOW;
  const how = info.reason === "exited" ? `exit code ${info.exitCode}` : `${info.reason} (exit code ${info.exitCode})`;
  const reused = info.warmReused.length ? ` · reused: ${info.warmReused.join(", ")}` : "";
  const lines = [`${color}■ ${how}${RESET}${DIM} · ${formatSeconds(info.duration)}${reused}${RESET}`];
  if (info.message && info.reason !== "exited") {
    lines.push(`${YELLOW}${info.message}${RESET}`);
  }
  return lines.join("\r\n") + "\r\n\r\n";
}

function quoteArg(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`;
}

/**
 * A run's stdout and stderr as terminal text: UTF-8 decoded across chunk boundaries (a
 * character may be split between two stream events), "\n" turned into "\r\n", and stderr in
 * red so it stands apart from stdout (the script's own colours inside it still show).
 */
export class TerminalText {
  private readonly decoders = new Map<string, TextDecoder>();
  /** The start of an escape sequence that a chunk of stderr ended in, for its next chunk. */
  private partialEscape = "";

  write(stream: string, data: Uint8Array): string {
    let decoder = this.decoders.get(stream);
    if (decoder === undefined) {
      decoder = new TextDecoder("utf-8");
      this.decoders.set(stream, decoder);
    }
    return this.styled(stream, decoder.decode(data, { stream: true }));
  }

  /** What is left in the decoders at the end of a run. */
  flush(): string {
    const rest = [...this.decoders.entries()].map(([stream, d]) => this.styled(stream, d.decode(), true)).join("");
    this.decoders.clear();
    return rest;
  }

  private styled(stream: string, text: string, last = false): string {
    if (stream !== "stderr") {
      return toTerminal(text);
    }
    let whole = this.partialEscape + text;
    // Colouring inside a split escape sequence would break it: keep its start for the next chunk.
    const partial = last ? null : /\x1b(\[[0-9;?]*)?$/.exec(whole);
    this.partialEscape = partial ? partial[0] : "";
    whole = partial ? whole.slice(0, partial.index) : whole;
    return toTerminal(whole).replace(/[^\r\n]+/g, (line) => RED + line + DEFAULT_FOREGROUND);
  }
}

export function toTerminal(text: string): string {
  return text.replace(/\r?\n/g, "\r\n");
}

/** Where the cursor is not at the start of a line after `text`, a footer needs a newline first. */
export function endsMidLine(text: string): boolean {
  return text.length > 0 && !text.endsWith("\n");
}
