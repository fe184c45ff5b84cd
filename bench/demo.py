"""`make demo`: the sample training script cold under python, then warm under hotswap."""

from __future__ import annotations

import json
import subprocess

from common import HOTSWAP, PYTHON, REPO, SAMPLE, env, scratch_workspace, timed


def show(title: str, argv: list[str], cwd: object) -> float:
    print(f"\n$ {' '.join(str(a) for a in argv)}   # {title}", flush=True)
    return timed([str(a) for a in argv], cwd=cwd, quiet=False)  # type: ignore[arg-type]


def main() -> None:
    with scratch_workspace() as ws:
        first = ["--workspace", str(ws)]
        # The first ever run builds the 124M model and saves it; keep that out of the figures.
        subprocess.run([PYTHON, str(SAMPLE), "--steps", "1"], env=env(), capture_output=True)
        cold = show("cold: plain python", [PYTHON, SAMPLE], ws)
        load = show(
            "first hotswap run: starts the daemon, loads the model",
            [HOTSWAP, "run", *first, SAMPLE],
            ws,
        )
        warm = show("warm: the model is still in memory", [HOTSWAP, "run", *first, SAMPLE], ws)
        print(
            f"\ncold python {cold:.2f}s | first hotswap run {load:.2f}s | "
            f"warm hotswap run {warm:.2f}s | {cold / warm:.0f}x faster warm"
        )
        print("Try it: .venv/bin/hotswap run samples/tiny_gpt/train.py  (then edit and rerun)")
        print(f"In VS Code: make package, then code --install-extension {vsix()}")


def vsix() -> str:
    """The VSIX that `make package` builds (its name carries package.json's version)."""
    version = json.loads((REPO / "package.json").read_text())["version"]
    return f"dist/hotswap-linux-x64-{version}.vsix"


if __name__ == "__main__":
    main()
