/**
 * The Hot Swap terminal's line discipline: what a tty in canonical mode does for `input()`.
 * Echo, backspace, Enter sends the line with "\n", Ctrl-D is end of file, Ctrl-C cancels.
 * No vscode here.
 */

export type LineAction =
  | { kind: "data"; text: string; eof: boolean } // a line (with "\n"), or what Ctrl-D flushed
  | { kind: "interrupt" };

export interface Edit {
  /** What to write back to the terminal. */
  echo: string;
  actions: LineAction[];
}

export class LineEditor {
  private buffer: string[] = [];
  private escape = "";

  /** Feed what the user typed (or pasted); get the echo and what to send. */
  feed(input: string): Edit {
    const edit: Edit = { echo: "", actions: [] };
    for (const char of input) {
      if (this.escape || char === "\x1b") {
        this.skipEscape(char);
      } else {
        this.key(char, edit);
      }
    }
    return edit;
  }

  /** What is typed but not sent yet. */
  get pending(): string {
    return this.buffer.join("");
  }

  /** Forget the typed line (a run ended). */
  clear(): void {
    this.buffer = [];
    this.escape = "";
  }

  private key(char: string, edit: Edit): void {
    switch (char) {
      case "\r":
      case "\n":
        edit.echo += "\r\n";
        edit.actions.push({ kind: "data", text: this.take() + "\n", eof: false });
        return;
      case "\x7f":
      case "\b":
        if (this.buffer.pop() !== undefined) {
          edit.echo += "\b \b";
        }
        return;
      case "\x04": {
        // Like a tty: with a typed line, Ctrl-D sends it; on an empty line it is end of file.
        const text = this.take();
        edit.actions.push({ kind: "data", text, eof: text === "" });
        return;
      }
      case "\x03":
        this.buffer = [];
        edit.echo += "^C\r\n";
        edit.actions.push({ kind: "interrupt" });
        return;
      default:
        if (char >= " " || char === "\t") {
          this.buffer.push(char);
          edit.echo += char;
        }
    }
  }

  /** Arrow keys and the like arrive as ESC [ ... final-byte; a line editor this simple drops them. */
  private skipEscape(char: string): void {
    this.escape += char;
    const done =
      (this.escape.length === 2 && char !== "[" && char !== "O") ||
      (this.escape.length > 2 && char >= "@" && char <= "~");
    if (done) {
      this.escape = "";
    }
  }

  private take(): string {
    const text = this.buffer.join("");
    this.buffer = [];
    return text;
  }
}
