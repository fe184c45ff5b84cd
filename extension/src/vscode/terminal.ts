/**
 * The "Hot Swap" terminal: a pseudoterminal showing runs, forwarding what the user types through
 * the line editor, and linking traceback lines to the workspace's files.
 */

import { existsSync, realpathSync } from "node:fs";
import * as vscode from "vscode";
import { LineAction, LineEditor } from "../node/lineEditor";
import { isInside, localPath, tracebackLinks } from "../node/links";
import type { PathMapping } from "../node/protocol";

export const TERMINAL_NAME = "Hot Swap";

export class HotSwapTerminal implements vscode.Disposable {
  private terminal: vscode.Terminal | undefined;
  private isOpen = false;
  private pending: string[] = [];
  private readonly writes = new vscode.EventEmitter<string>();
  private readonly editor = new LineEditor();
  private readonly subscriptions: vscode.Disposable[] = [];
  /** Where typed lines go; undefined while no run reads them. */
  onInput: ((action: LineAction) => void) | undefined;

  constructor() {
    this.subscriptions.push(
      vscode.window.onDidCloseTerminal((closed) => {
        if (closed === this.terminal) {
          this.terminal = undefined;
          this.isOpen = false;
        }
      }),
    );
  }

  is(terminal: vscode.Terminal): boolean {
    return terminal === this.terminal;
  }

  show(preserveFocus = true): void {
    this.ensure().show(preserveFocus);
    this.scrollToBottom();
  }

  /**
   * Lines written while the panel showed something else (the Debug Console) leave xterm's
   * viewport behind: bring the newest output into view.
   */
  scrollToBottom(): void {
    if (this.terminal !== undefined && vscode.window.activeTerminal === this.terminal) {
      void vscode.commands.executeCommand("workbench.action.terminal.scrollToBottom");
    }
  }

  /** Write terminal text (CRLF line ends, ANSI colors); kept until the terminal opens. */
  print(text: string): void {
    if (!text) {
      return;
    }
    this.ensure();
    if (this.isOpen) {
      this.writes.fire(text);
    } else {
      this.pending.push(text);
    }
  }

  /** A run ended: what was typed and not sent belongs to no one. */
  clearInput(): void {
    this.editor.clear();
  }

  dispose(): void {
    this.terminal?.dispose();
    this.writes.dispose();
    this.subscriptions.forEach((s) => s.dispose());
  }

  private ensure(): vscode.Terminal {
    if (this.terminal === undefined) {
      const pty: vscode.Pseudoterminal = {
        onDidWrite: this.writes.event,
        open: () => {
          this.isOpen = true;
          this.writes.fire(this.pending.join(""));
          this.pending = [];
        },
        close: () => {
          this.isOpen = false;
          this.terminal = undefined;
        },
        handleInput: (data) => this.handleInput(data),
      };
      this.terminal = vscode.window.createTerminal({ name: TERMINAL_NAME, pty, iconPath: new vscode.ThemeIcon("zap") });
    }
    return this.terminal;
  }

  private handleInput(data: string): void {
    if (this.onInput === undefined) {
      return; // no run is reading: typing means nothing
    }
    const edit = this.editor.feed(data);
    this.print(edit.echo);
    edit.actions.forEach((action) => this.onInput?.(action));
  }
}

interface HotSwapLink extends vscode.TerminalLink {
  file: string;
  line: number;
}

/** Links `File "path", line N` in the Hot Swap terminal to the workspace file, at that line. */
export class TracebackLinkProvider implements vscode.TerminalLinkProvider<HotSwapLink> {
  constructor(
    private readonly terminal: HotSwapTerminal,
    /** The path mappings and cwd of the run whose output is shown. */
    private readonly context: () => { mappings: PathMapping[]; cwd: string } | undefined,
  ) {}

  provideTerminalLinks(context: vscode.TerminalLinkContext): HotSwapLink[] {
    const run = this.context();
    if (!this.terminal.is(context.terminal) || run === undefined) {
      return [];
    }
    // A folder opened through a symbolic link runs under its real path: both are the workspace's.
    const folders = (vscode.workspace.workspaceFolders ?? []).flatMap((f) => [f.uri.fsPath, realPath(f.uri.fsPath)]);
    return tracebackLinks(context.line)
      .map((link) => ({ ...link, file: localPath(link.file, run.mappings, run.cwd) }))
      .filter((link) => folders.some((folder) => isInside(link.file, folder)) && existsSync(link.file))
      .map((link) => ({
        startIndex: link.start,
        length: link.length,
        tooltip: `Open ${vscode.workspace.asRelativePath(link.file)} at line ${link.line}`,
        file: link.file,
        line: link.line,
      }));
  }

  async handleTerminalLink(link: HotSwapLink): Promise<void> {
    const position = new vscode.Position(Math.max(0, link.line - 1), 0);
    await vscode.window.showTextDocument(vscode.Uri.file(link.file), { selection: new vscode.Range(position, position) });
  }
}

function realPath(folder: string): string {
  try {
    return realpathSync(folder);
  } catch {
    return folder;
  }
}
