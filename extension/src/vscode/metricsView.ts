/**
 * "Hot Swap: Metrics": a webview with the hotswap.log curves of the current run over the
 * earlier runs of its entry, updated live. This side asks the daemon (`runs`, `metrics`),
 * follows `metrics_update` events and hands the webview what changed; the webview draws.
 */

import { randomBytes } from "node:crypto";
import * as vscode from "vscode";
import type { RunFinishedBody } from "../node/protocol";
import { type FromWebview, MAX_RUNS, type MetricsUpdate, MetricsModel, type ToWebview } from "../webview/metricsData";
import { Backends, Connection } from "./backend";
import { report } from "./errors";

export const SHOW_METRICS = "hotswap.showMetrics";
/** In the run header: the terminal links these words to the view. */
export const METRICS_LINK_TEXT = "show metrics";
const POST_EVERY_MS = 100;
/** After a run's last update, its record is read again: a terminal's run sends us no end. */
const SETTLE_MS = 1500;

export class MetricsView implements vscode.Disposable {
  private panel: vscode.WebviewPanel | undefined;
  private readonly model = new MetricsModel();
  private readonly wired = new WeakSet<Connection>();
  private outbox: MetricsUpdate[] = [];
  private postTimer: NodeJS.Timeout | undefined;
  private settleTimer: NodeJS.Timeout | undefined;
  private loading: Promise<void> = Promise.resolve();
  private autoOpened = false;
  private readonly subscriptions: vscode.Disposable[] = [];

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly backends: Backends,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.subscriptions.push(
      backends.onDidCreate((backend) =>
        this.subscriptions.push(backend.onDidChange((connection) => connection && this.wire(connection))),
      ),
    );
  }

  /** Open (or reveal) the view; with nothing loaded yet, the newest run of the workspace. */
  async show(preserveFocus = false): Promise<void> {
    this.ensurePanel(preserveFocus);
    if (this.model.entry === null) {
      const connection = await this.backends.current().connect();
      this.wire(connection);
      const [newest] = (await connection.transport.request("runs", { limit: 1 })).runs;
      if (newest !== undefined) {
        await this.load(connection, newest.entry, newest.run_id);
      }
    }
  }

  dispose(): void {
    clearTimeout(this.postTimer);
    clearTimeout(this.settleTimer);
    this.panel?.dispose();
    this.subscriptions.forEach((s) => s.dispose());
  }

  // -- the daemon's side ------------------------------------------------------------------

  private wire(connection: Connection): void {
    if (this.wired.has(connection)) {
      return;
    }
    this.wired.add(connection);
    connection.transport.on("metrics_update", (body) => this.updated(connection, body));
    connection.transport.on("run_finished", (body) => this.finished(connection, body));
  }

  private updated(connection: Connection, update: MetricsUpdate): void {
    this.openFirstTime();
    const known = this.model.entry === update.entry && this.model.runs.some((r) => r.run_id === update.run_id);
    if (!known) {
      this.loading = this.loading.then(() => this.load(connection, update.entry, update.run_id));
    }
    // After any load in progress, so an update never lands before its run's full copy.
    this.loading = this.loading.then(() => {
      if (this.model.update(update)) {
        this.outbox.push(update);
        this.schedulePost();
      }
    });
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => this.finished(connection, { run_id: update.run_id }), SETTLE_MS);
  }

  private finished(connection: Connection, body: Pick<RunFinishedBody, "run_id">): void {
    if (this.model.runs.some((r) => r.run_id === body.run_id) && this.model.entry !== null) {
      const entry = this.model.entry;
      this.loading = this.loading.then(() => this.load(connection, entry, this.model.current));
    }
  }

  /** The runs of `entry` and the series of those not yet held (the current one's included). */
  private async load(connection: Connection, entry: string, current: string | null): Promise<void> {
    try {
      const { runs } = await connection.transport.request("runs", { entry, limit: MAX_RUNS });
      const listed: ToWebview = { type: "runs", entry, current, runs };
      this.model.apply(listed);
      this.post(listed);
      for (const run of this.model.runs.filter((r) => !this.model.series.has(r.run_id))) {
        const { series } = await connection.transport.request("metrics", { run_id: run.run_id });
        const full: ToWebview = { type: "series", run_id: run.run_id, series };
        this.model.apply(full);
        this.post(full);
      }
    } catch (err) {
      report(this.log, "loading the metrics of earlier runs", err);
    }
  }

  private openFirstTime(): void {
    if (this.autoOpened || this.panel !== undefined) {
      return;
    }
    this.autoOpened = true;
    if (vscode.workspace.getConfiguration("hotswap").get<boolean>("metrics.autoOpen", true)) {
      this.ensurePanel(true);
    }
  }

  // -- the webview ------------------------------------------------------------------------

  private ensurePanel(preserveFocus: boolean): void {
    if (this.panel !== undefined) {
      this.panel.reveal(undefined, preserveFocus);
      return;
    }
    const dist = vscode.Uri.joinPath(this.extensionUri, "extension", "dist");
    const panel = vscode.window.createWebviewPanel(
      "hotswap.metrics",
      "Hot Swap: Metrics",
      { viewColumn: vscode.ViewColumn.Beside, preserveFocus },
      { enableScripts: true, localResourceRoots: [dist] },
    );
    panel.webview.html = metricsHtml(panel.webview, dist);
    panel.webview.onDidReceiveMessage((msg: FromWebview) => this.received(msg), undefined, this.subscriptions);
    panel.onDidDispose(() => (this.panel = undefined), undefined, this.subscriptions);
    this.panel = panel;
  }

  private received(msg: FromWebview): void {
    if (msg.type === "ready") {
      // A fresh page (opened, or shown again after being hidden) starts from everything held.
      this.outbox = [];
      if (this.model.entry !== null) {
        this.post({ type: "runs", entry: this.model.entry, current: this.model.current, runs: this.model.runs });
        this.model.runs.forEach((r) => this.post({ type: "series", run_id: r.run_id, series: this.model.fullSeries(r.run_id) }));
      }
    }
  }

  private post(msg: ToWebview): void {
    void this.panel?.webview.postMessage(msg).then(undefined, (err) => this.log.warn(`metrics view: ${String(err)}`));
  }

  /** Live updates travel together, at most every POST_EVERY_MS: a fast loop logs thousands. */
  private schedulePost(): void {
    this.postTimer ??= setTimeout(() => {
      this.postTimer = undefined;
      const updates = this.outbox;
      this.outbox = [];
      if (updates.length) {
        this.post({ type: "updates", updates });
      }
    }, POST_EVERY_MS);
  }
}

/** The page: our script and uPlot's CSS only, under a CSP with a fresh nonce. */
export function metricsHtml(webview: vscode.Webview, dist: vscode.Uri): string {
  const nonce = randomBytes(16).toString("base64");
  const script = webview.asWebviewUri(vscode.Uri.joinPath(dist, "metricsWebview.js"));
  const css = webview.asWebviewUri(vscode.Uri.joinPath(dist, "metricsWebview.css"));
  const csp = [
    "default-src 'none'",
    `style-src ${webview.cspSource} 'nonce-${nonce}'`,
    `script-src 'nonce-${nonce}'`,
    `img-src ${webview.cspSource} data:`,
    `font-src ${webview.cspSource}`,
  ].join("; ");
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${css}">
<style nonce="${nonce}">
  body { color: var(--vscode-foreground); background: var(--vscode-editor-background); font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); padding: 8px 12px; }
  header { display: flex; flex-wrap: wrap; gap: 16px; align-items: center; margin-bottom: 8px; }
  #runs { display: flex; flex-direction: column; gap: 2px; margin-bottom: 8px; }
  .run { display: flex; gap: 6px; align-items: center; cursor: pointer; }
  .swatch { display: inline-block; width: 14px; height: 3px; }
  .chart h2 { font-size: 1.05em; font-weight: 600; margin: 12px 0 4px; }
  .thinned { font-weight: normal; color: var(--vscode-descriptionForeground); }
  .u-legend { color: var(--vscode-foreground); font-size: 0.9em; text-align: left; }
  .u-legend .u-marker { border-radius: 0; }
  .u-select { background: var(--vscode-editor-selectionBackground); }
  #empty { color: var(--vscode-descriptionForeground); }
  input[type=range] { accent-color: var(--vscode-focusBorder); }
</style>
<title>Hot Swap: Metrics</title>
</head>
<body>
<header>
  <label>smoothing <input id="smoothing" type="range" min="0" max="99" value="0"> <span id="smoothing-value">0.00</span></label>
  <label><input id="log-scale" type="checkbox"> log scale</label>
</header>
<div id="runs"></div>
<p id="empty">No metrics yet: call <code>hotswap.log({"loss": loss})</code> in a script run with Hot Swap.</p>
<div id="charts"></div>
<script nonce="${nonce}" src="${script}"></script>
</body>
</html>`;
}

/** "show metrics" in a run header of the Hot Swap terminal opens the view. */
export class MetricsLinkProvider implements vscode.TerminalLinkProvider {
  constructor(private readonly isOurs: (terminal: vscode.Terminal) => boolean) {}

  provideTerminalLinks(context: vscode.TerminalLinkContext): vscode.TerminalLink[] {
    const start = context.line.lastIndexOf(METRICS_LINK_TEXT);
    if (!this.isOurs(context.terminal) || !context.line.startsWith("▶ ") || start < 0) {
      return [];
    }
    return [{ startIndex: start, length: METRICS_LINK_TEXT.length, tooltip: "Open Hot Swap: Metrics" }];
  }

  async handleTerminalLink(): Promise<void> {
    await vscode.commands.executeCommand(SHOW_METRICS);
  }
}
