/** The Hot Swap terminal's line editor: what a user typing into input() sees and sends. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { LineEditor } from "../../src/node/lineEditor";

test("typed characters echo, and Enter sends the line with a newline", () => {
  const editor = new LineEditor();
  assert.deepEqual(editor.feed("Ada"), { echo: "Ada", actions: [] });
  assert.deepEqual(editor.feed("\r"), { echo: "\r\n", actions: [{ kind: "data", text: "Ada\n", eof: false }] });
  assert.equal(editor.pending, "");
});

test("backspace erases the last character on screen and in the line, not past its start", () => {
  const editor = new LineEditor();
  const edit = editor.feed("abc\x7f\x7fd\x7f\x7f\x7fx\r");
  assert.equal(edit.echo, "abc\b \b\b \bd\b \b\b \bx\r\n");
  assert.deepEqual(edit.actions, [{ kind: "data", text: "x\n", eof: false }]);
});

test("a pasted block sends one line per newline", () => {
  const edit = new LineEditor().feed("one\rtwo\rthr");
  assert.deepEqual(
    edit.actions.map((a) => (a.kind === "data" ? a.text : a.kind)),
    ["one\n", "two\n"],
  );
});

test("Ctrl-D on an empty line is end of file; after typed text it sends the text first", () => {
  const editor = new LineEditor();
  assert.deepEqual(editor.feed("\x04").actions, [{ kind: "data", text: "", eof: true }]);
  assert.deepEqual(editor.feed("tail\x04").actions, [{ kind: "data", text: "tail", eof: false }]);
  assert.deepEqual(editor.feed("\x04").actions, [{ kind: "data", text: "", eof: true }]);
});

test("Ctrl-C drops the typed line and asks to cancel", () => {
  const editor = new LineEditor();
  const edit = editor.feed("half\x03");
  assert.equal(edit.echo, "half^C\r\n");
  assert.deepEqual(edit.actions, [{ kind: "interrupt" }]);
  assert.equal(editor.pending, "");
});

test("arrow keys are ignored rather than typed, and wide characters erase whole", () => {
  const editor = new LineEditor();
  const edit = editor.feed("a\x1b[Db\x1bOAc😀\x7f\r");
  assert.deepEqual(edit.actions, [{ kind: "data", text: "abc\n", eof: false }]);
});
