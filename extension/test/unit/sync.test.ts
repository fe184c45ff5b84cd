/** Manifests, digests and ignore rules agree with backend/sync.py on the same input. */

import assert from "node:assert/strict";
import { rmSync, symlinkSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { after, test } from "node:test";
import type { SyncPolicy } from "../../src/node/protocol";
import { IgnoreRules, chunkPaths, digestOf, planDiff, scan } from "../../src/node/sync";
import { python, tempTree } from "../helpers";

const roots: string[] = [];

/** The daemon's default policy, as its hello_reply states it (the extension keeps no copy). */
function daemonPolicy(maxFileBytes?: number): SyncPolicy {
  const limit = maxFileBytes === undefined ? "DEFAULT_MAX_FILE_BYTES" : String(maxFileBytes);
  return JSON.parse(python(`import json; from hotswap.sync import sync_policy, DEFAULT_MAX_FILE_BYTES; print(json.dumps(sync_policy(${limit})))`));
}
const POLICY = daemonPolicy();
after(() => roots.forEach((root) => rmSync(root, { recursive: true, force: true })));

function pythonDigest(files: Record<string, string>): string {
  return python("import json, sys; from hotswap.sync import digest_of; print(digest_of(json.load(sys.stdin)))", JSON.stringify(files)).trim();
}

test("the digest of a manifest equals Python's digest_of", () => {
  const files = {
    "train.py": "a".repeat(64),
    "pkg/model.py": "0123456789abcdef".repeat(4),
    "données/ünïcode €.txt": "f".repeat(64),
  };
  const ours = digestOf(Object.entries(files));
  assert.equal(ours, pythonDigest(files));
  assert.match(ours, /^[0-9a-f]{64}$/);
});

test("the digest does not depend on order, and an empty manifest is all zeros", () => {
  const entries: [string, string][] = [
    ["a.py", "1".repeat(64)],
    ["b.py", "2".repeat(64)],
  ];
  assert.equal(digestOf(entries), digestOf([...entries].reverse()));
  assert.equal(digestOf([]), "0".repeat(64));
  assert.equal(digestOf([]), pythonDigest({}));
});

/** A tree exercising every kind of rule: defaults, nested .gitignore, .hotswapignore, negation. */
function ruleTree(): string {
  const root = tempTree({
    ".gitignore": "*.log\n/build/\ndata/*.bin\n!data/keep.bin\n",
    ".hotswapignore": "checkpoints/\n",
    "train.py": "print('train')\n",
    "run.log": "log\n",
    "build/out.txt": "x\n",
    "sub/build/kept.txt": "anchored /build/ only matches at the root\n",
    "data/a.bin": "a",
    "data/keep.bin": "k",
    "checkpoints/model.pt": "weights",
    "pkg/.gitignore": "secret.py\ngen/\n",
    "pkg/secret.py": "hidden\n",
    "pkg/model.py": "model\n",
    "pkg/gen/code.py": "generated\n",
    "other/secret.py": "not ignored here: the rule is pkg's\n",
    "__pycache__/x.cpython-311.pyc": "",
    "pkg/mod.pyc": "",
    ".git/HEAD": "ref\n",
    "node_modules/x/index.js": "",
    "env/pyvenv.cfg": "home = /usr\n",
    "env/lib/site.py": "",
    ".hotswap/connection.json": "{}",
    "Notes.LOG": "case matters, as in git on Linux\n",
  });
  symlinkSync(path.join(root, "train.py"), path.join(root, "link.py"));
  roots.push(root);
  return root;
}

test("scanning a tree finds the same files and hashes as Python's scan", async () => {
  const root = ruleTree();
  const { files, skipped } = await scan(root, POLICY);
  const expected = JSON.parse(
    python(
      "import json, sys; from pathlib import Path; from hotswap.sync import scan\n" +
        "files, skipped = scan(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(input()))\n" +
        "print(json.dumps({'files': {p: e.sha256 for p, e in files.items()}, 'skipped': [s.path for s in skipped]}))",
      root + "\n",
    ),
  );
  const ours = Object.fromEntries([...files].map(([p, e]) => [p, e.sha256]));
  assert.deepEqual(ours, expected.files);
  assert.deepEqual(
    skipped.map((s) => s.path),
    expected.skipped,
  );
  assert.deepEqual(Object.keys(ours).sort(), [
    ".gitignore",
    ".hotswapignore",
    "Notes.LOG",
    "data/keep.bin",
    "other/secret.py",
    "pkg/.gitignore",
    "pkg/model.py",
    "sub/build/kept.txt",
    "train.py",
  ]);
});

test("a rescan reuses the hash of a file whose size and mtime did not change", async () => {
  const root = tempTree({ "a.py": "one\n" });
  roots.push(root);
  const first = await scan(root, POLICY);
  const fake = new Map([["a.py", { ...first.files.get("a.py")!, sha256: "cached" }]]);
  assert.equal((await scan(root, POLICY, fake)).files.get("a.py")?.sha256, "cached");
  writeFileSync(path.join(root, "a.py"), "two, longer\n");
  assert.notEqual((await scan(root, POLICY, fake)).files.get("a.py")?.sha256, "cached");
});

test("files over the size limit are skipped with the reason", async () => {
  const root = tempTree({ "big.bin": "x".repeat(2048), "small.py": "" });
  roots.push(root);
  const { files, skipped } = await scan(root, daemonPolicy(1024));
  assert.deepEqual([...files.keys()], ["small.py"]);
  assert.equal(skipped[0].path, "big.bin");
  assert.match(skipped[0].reason, /over the .* MB limit/);
});

test("ignoredPath says whether a saved file is part of the synced workspace", () => {
  const rules = new IgnoreRules(ruleTree(), POLICY);
  assert.equal(rules.ignoredPath("train.py"), false);
  assert.equal(rules.ignoredPath("pkg/model.py"), false);
  assert.equal(rules.ignoredPath("pkg/secret.py"), true);
  assert.equal(rules.ignoredPath("pkg/gen/code.py"), true);
  assert.equal(rules.ignoredPath("run.log"), true);
  assert.equal(rules.ignoredPath("checkpoints/model.pt"), true);
  assert.equal(rules.ignoredPath(".hotswap/daemon.log"), true);
  assert.equal(rules.ignoredPath("data/keep.bin"), false);
});

test("planDiff sends changed and new files and deletes the ones gone", () => {
  const entry = (sha: string) => ({ size: 1, mtimeNs: 0n, sha256: sha });
  const files = new Map([
    ["same.py", entry("1")],
    ["changed.py", entry("2")],
    ["new.py", entry("3")],
  ]);
  const acked = new Map([
    ["same.py", "1"],
    ["changed.py", "old"],
    ["gone.py", "4"],
  ]);
  assert.deepEqual(planDiff(files, acked), [["changed.py", "new.py"], ["gone.py"]]);
});

test("chunks stay under the limit, and a bigger file travels alone", () => {
  const sizes = new Map(
    Object.entries({ a: 4, b: 4, c: 20, d: 1 }).map(([p, size]) => [p, { size, mtimeNs: 0n, sha256: "" }]),
  );
  assert.deepEqual(chunkPaths(["a", "b", "c", "d"], sizes, 10), [["a", "b"], ["c"], ["d"]]);
  assert.equal(POLICY.chunk_bytes, Number(python("from hotswap.sync import CHUNK_BYTES; print(CHUNK_BYTES)")));
});

test("only the daemon's policy says what is ignored: no default of the extension's own", async () => {
  const root = tempTree({
    "keep/.git/HEAD": "a policy that does not name .git syncs it\n",
    "custom/x.py": "ignored by name\n",
    "a.pyc": "synced: no suffix in this policy\n",
    "a.skipme": "ignored by suffix\n",
    ".gitignore": "from-gitignore.py\n",
    "from-gitignore.py": "synced: .gitignore is not an ignore file of this policy\n",
    ".otherignore": "from-other.py\n",
    "from-other.py": "ignored\n",
    "sub/.otherignore": "nested.py\n",
    "sub/nested.py": "ignored by the nested file\n",
    "env/marker.cfg": "",
    "env/lib.py": "a folder with the policy's venv marker",
    "big.py": "x".repeat(100),
  });
  roots.push(root);
  const policy: SyncPolicy = {
    ...POLICY,
    max_file_bytes: 80,
    ignored_dirs: ["custom"],
    ignored_suffixes: [".skipme"],
    ignore_files: [".otherignore"],
    nested_ignore_files: [".otherignore"],
    venv_markers: ["marker.cfg"],
  };
  const { files, skipped } = await scan(root, policy);
  assert.deepEqual([...files.keys()].sort(), [".gitignore", ".otherignore", "a.pyc", "from-gitignore.py", "keep/.git/HEAD", "sub/.otherignore"]);
  assert.deepEqual(skipped.map((s) => s.path), ["big.py"]);
  const rules = new IgnoreRules(root, policy);
  assert.deepEqual(["custom/x.py", "sub/nested.py", "from-other.py", "keep/.git/HEAD"].map((p) => rules.ignoredPath(p)), [true, true, true, false]);
  symlinkSync(path.join(root, "a.pyc"), path.join(root, "link.py"));
  assert.deepEqual((await scan(root, policy)).skipped.map((s) => s.path), ["big.py", "link.py"]);
  const followed = await scan(root, { ...policy, sync_symlinks: true });
  assert.equal(followed.files.get("link.py")?.sha256, followed.files.get("a.pyc")?.sha256);
});
