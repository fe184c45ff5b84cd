/** Traceback lines in the terminal link to the files they name, mapped back from the daemon. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { isInside, localPath, tracebackLinks } from "../../src/node/links";

test("each `File \"path\", line N` of a traceback line is a link", () => {
  const line = '  File "/work/ws/train.py", line 42, in <module>';
  assert.deepEqual(tracebackLinks(line), [{ start: 2, length: 33, file: "/work/ws/train.py", line: 42 }]);
  assert.equal(line.slice(2, 2 + 33), 'File "/work/ws/train.py", line 42');
  assert.deepEqual(tracebackLinks("no traceback here, line 3"), []);
  const two = 'File "a.py", line 1 then File "b/c d.py", line 20';
  assert.deepEqual(
    tracebackLinks(two).map((l) => [l.file, l.line]),
    [
      ["a.py", 1],
      ["b/c d.py", 20],
    ],
  );
});

test("daemon paths map back to the editor's in mirror mode; relative ones resolve in cwd", () => {
  const mappings = [{ localRoot: "/home/me/proj", remoteRoot: "/srv/hotswap/mirror/" }];
  assert.equal(localPath("/srv/hotswap/mirror/pkg/m.py", mappings, "/x"), "/home/me/proj/pkg/m.py");
  assert.equal(localPath("/srv/hotswap/mirror-old/m.py", mappings, "/x"), "/srv/hotswap/mirror-old/m.py");
  assert.equal(localPath("pkg/m.py", [], "/home/me/proj"), "/home/me/proj/pkg/m.py");
  assert.equal(isInside("/home/me/proj/pkg/m.py", "/home/me/proj"), true);
  assert.equal(isInside("/home/me/project2/m.py", "/home/me/proj"), false);
  assert.equal(isInside("/usr/lib/python3.11/runpy.py", "/home/me/proj"), false);
});
