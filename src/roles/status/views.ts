import type { ReasonCount, StatusCounts } from '../../db/dashboard.js'
import type { ReplicaLag } from '../../db/replica.js'
import type { DeadList, OperatorLookup, OperatorRecord } from '../../operations/index.js'
import type { HeldRow, IntakeRow, ProcessRow, ProviderRow, QueueRow } from './live.js'

/**
 * The dashboard's HTML, rendered on the server (htmx swaps these fragments in). Every value is
 * escaped by the `html` tag unless wrapped in `raw` (only for fragments this file built).
 * Names and free text from the database are wrapped in `dir="auto"` elements, so Persian (RTL)
 * names display in their own direction inside the left-to-right tables.
 */
class Raw {
  constructor(readonly s: string) {}
  toString(): string {
    return this.s
  }
}
export const raw = (s: string): Raw => new Raw(s)

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
}
function esc(v: unknown): string {
  if (v instanceof Raw) return v.s
  if (Array.isArray(v)) return v.map(esc).join('')
  if (v === null || v === undefined || v === false) return ''
  return String(v).replace(/[&<>"']/g, (c) => ESCAPES[c]!)
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Raw {
  let out = strings[0]!
  for (let i = 0; i < values.length; i++) out += esc(values[i]) + strings[i + 1]!
  return new Raw(out)
}

const DASH = '—'

export function fmtRate(v: number | null): string {
  if (v === null) return DASH
  if (v === 0) return '0'
  if (v < 10) return v.toFixed(1)
  return Math.round(v).toLocaleString('en-US')
}

export function fmtCount(v: number | null | undefined): string {
  return v === null || v === undefined ? DASH : v.toLocaleString('en-US')
}

export function fmtMs(v: number | null): string {
  if (v === null) return DASH
  return v < 10 ? `${v.toFixed(1)} ms` : `${Math.round(v).toLocaleString('en-US')} ms`
}

export function fmtPct(v: number | null): string {
  if (v === null) return DASH
  return `${(v * 100).toFixed(v < 0.1 && v > 0 ? 1 : 0)} %`
}

export function fmtDuration(s: number): string {
  if (s < 1) return '< 1 s'
  if (s < 90) return `${Math.round(s)} s`
  if (s < 5400) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`
}

const CSS = '/dashboard/assets/dashboard.css'

function layout(title: string, body: Raw, opts: { scripts?: boolean } = {}): string {
  return html`<!doctype html>
<html lang="en" dir="ltr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="htmx-config" content='{"includeIndicatorStyles": false, "allowEval": false, "allowScriptTags": false}'>
<title>${title}</title>
<link rel="stylesheet" href="${CSS}">
${
  opts.scripts
    ? raw(`<link rel="stylesheet" href="/dashboard/assets/uPlot.min.css">
<script src="/dashboard/assets/htmx.min.js" defer></script>
<script src="/dashboard/assets/uPlot.iife.min.js" defer></script>
<script type="module" src="/dashboard/assets/dashboard.js"></script>`)
    : ''
}
</head>
<body>
${body}
</body>
</html>
`.s
}

export function loginPage(opts: { error?: string } = {}): string {
  return layout(
    'Sabt — sign in',
    html`<main class="login">
<h1>Sabt operator dashboard</h1>
<form method="post" action="/dashboard/login">
  <label for="token">Operator token</label>
  <input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
  <button type="submit">Sign in</button>
  ${opts.error ? html`<p class="error" role="alert">${opts.error}</p>` : ''}
  <p class="hint">Your personal token (<code>sabt operators add NAME</code>). Before the first operator exists: <code>SABT_ADMIN_TOKEN</code> (<code>npm start</code> prints a generated one).</p>
</form>
</main>`,
  )
}

/** The page: charts drawn by dashboard.js, tables polled by htmx. */
export function dashboardPage(opts: {
  checks: string[]
  queues: { name: string }[]
  replica?: boolean
  /** A panel per scarce campaign (decision 019). */
  scarce?: boolean
}): string {
  const poll = (path: string, every: string) =>
    raw(`hx-get="/dashboard/fragments/${path}" hx-trigger="load, every ${every}" hx-swap="innerHTML"`)
  return layout(
    'Sabt — operator dashboard',
    html`<header>
  <h1>Sabt <span class="sub">operator dashboard</span></h1>
  <nav>
    <button type="button" id="dir-toggle" title="Switch the page direction">RTL / LTR</button>
    <button type="button" hx-post="/dashboard/logout">Sign out</button>
  </nav>
</header>
<main>
<section id="now" class="tiles" aria-label="Current rates">
  <div class="tile"><span class="label">accepted req/s</span><span class="value" id="now-accepted">${DASH}</span></div>
  <div class="tile"><span class="label">rejected req/s</span><span class="value" id="now-rejected">${DASH}</span></div>
  <div class="tile"><span class="label">shed / failed req/s</span><span class="value" id="now-shed">${DASH}</span></div>
  <div class="tile"><span class="label">recorded/s</span><span class="value" id="now-recorded">${DASH}</span></div>
  <div class="tile"><span class="label">checks/s</span><span class="value" id="now-checks">${DASH}</span></div>
</section>
<p class="note" id="charts-note">Rates: counter deltas over the last 3 s of snapshots from every process, one point a second.</p>
<section id="charts" data-points="0" data-last="0" data-checks="${opts.checks.join(',')}" data-queues="${opts.queues.map((q) => q.name).join('|')}">
  <figure><figcaption>Intake (requests/s)</figcaption><div class="chart" id="chart-intake"></div></figure>
  <figure><figcaption>Recorded/s</figcaption><div class="chart" id="chart-recorded"></div></figure>
  <figure><figcaption>Checks finished/s by provider</figcaption><div class="chart" id="chart-checks"></div></figure>
  <figure><figcaption>Queue depths (messages)</figcaption><div class="chart" id="chart-queues"></div></figure>
</section>
<section>
  <h2>Intake <span class="sub">group commit, last 10 s</span></h2>
  <div id="intake" ${poll('intake', '1s')}></div>
</section>
<section>
  <h2>Queues</h2>
  <div id="queues" ${poll('queues', '1s')}></div>
</section>
<section>
  <h2>Providers <span class="sub">last 10 s</span></h2>
  <div id="providers" ${poll('providers', '1s')}></div>
</section>
<div class="columns">
<section>
  <h2>Registrations by status</h2>
  <div id="counts" ${poll('counts', '2s')}></div>
</section>
<section>
  <h2>Find a registration</h2>
  <form id="lookup-form" hx-post="/dashboard/fragments/lookup" hx-target="#lookup-result" hx-swap="innerHTML">
    <label for="lookup-q">Registration id or national id</label>
    <input id="lookup-q" name="q" autocomplete="off" spellcheck="false" dir="auto" required maxlength="64">
    <button type="submit">Find</button>
  </form>
  <div id="lookup-result" aria-live="polite"></div>
</section>
</div>
<section>
  <h2>Top rejection reasons <span class="sub">per campaign: last hour and all time</span></h2>
  <div id="reasons" ${poll('reasons', '5s')}></div>
</section>
${
  opts.replica
    ? html`<section>
  <h2>Read replica <span class="sub">status lookups and this page read it</span></h2>
  <div id="replica" ${poll('replica', '2s')}></div>
</section>`
    : ''
}
${
  opts.scarce
    ? html`<section>
  <h2>Scarce campaigns <span class="sub">places, waiting lists, draws, releases</span></h2>
  <div id="scarce" ${poll('scarce', '5s')}></div>
</section>`
    : ''
}
<section>
  <h2>Dead letters</h2>
  <p id="dead-note" role="status"></p>
  <div id="dead" ${poll('dead', '2s')}></div>
</section>
<section>
  <h2>Processes <span class="sub">publishing stats snapshots</span></h2>
  <div id="processes" ${poll('processes', '2s')}></div>
</section>
</main>`,
    { scripts: true },
  )
}

export function queuesFragment(rows: QueueRow[], brokerUp: boolean): string {
  return html`${brokerUp ? '' : html`<p class="error">RabbitMQ is not reachable from the status role: depths unknown.</p>`}
<table class="num">
<thead><tr><th><bdi>queue</bdi></th><th><bdi>messages</bdi></th><th><bdi>consumers</bdi></th><th title="net change of the depth, fitted over the last 10 s"><bdi>change/s</bdi></th><th title="depth ÷ net drain rate of the last 10 s"><bdi>est. time to drain</bdi></th></tr></thead>
<tbody>
${rows.map((q) => {
  let drain: string
  if (q.messages === null) drain = DASH
  else if (q.messages === 0) drain = 'empty'
  else if (q.drain_s !== null) drain = fmtDuration(q.drain_s)
  else drain = q.change_per_s !== null && q.change_per_s > 0.05 ? 'growing' : 'not draining'
  const cls =
    q.kind === 'dead' || q.kind === 'intake_dead'
      ? q.messages
        ? 'bad'
        : ''
      : q.kind === 'dead_inbox' && q.messages
        ? 'warn'
        : ''
  return html`<tr data-queue="${q.name}" data-kind="${q.kind}" class="${cls}"><td class="name" title="${q.queue}">${q.name}</td><td data-col="messages">${fmtCount(q.messages)}</td><td>${fmtCount(q.consumers)}</td><td>${q.change_per_s === null ? DASH : (q.change_per_s > 0 ? '+' : '') + fmtRate(Math.abs(q.change_per_s) < 0.05 ? 0 : q.change_per_s)}</td><td data-col="drain">${drain}</td></tr>`
})}
</tbody>
</table>${
    rows.some((q) => q.kind === 'intake_dead' && q.messages)
      ? html`<p class="note" data-hint="intake_dead">Intake dead letters are registrations answered 202 that the recorder could not store (a campaign or key it does not know, a row the database refused). They are kept: fix the cause, then <code>sabt dead list --intake</code> and <code>sabt dead replay --intake</code>.</p>`
      : ''
  }`.s
}

export function intakeFragment(r: IntakeRow): string {
  const fmtN = (v: number | null) => (v === null ? DASH : v < 10 ? v.toFixed(1) : fmtCount(Math.round(v)))
  return html`<table class="num">
<thead><tr><th><bdi>gateways</bdi></th><th><bdi>messages confirmed/s</bdi></th><th><bdi>registrations per confirm</bdi></th><th><bdi>batch p50</bdi></th><th><bdi>batch p99</bdi></th></tr></thead>
<tbody><tr><td>${r.gateways}</td><td>${fmtRate(r.messages_per_s)}</td><td data-col="per-confirm">${fmtN(r.registrations_per_confirm)}</td><td>${fmtN(r.batch_p50)}</td><td>${fmtN(r.batch_p99)}</td></tr></tbody>
</table>
<p class="note">Each gateway puts the registrations that arrive for a shard while its previous publish awaits the broker's confirm into one intake message: one confirm answers them all. Registrations per confirm = 202s ÷ confirmed intake messages; batch sizes from the histogram's buckets.</p>`
    .s
}

const CIRCUIT_CLASS = { closed: 'ok', 'half-open': 'warn', open: 'bad' } as const

const HELD_WHY: Record<string, string> = {
  unknown_campaign: 'is not in their configuration',
  check_not_in_campaign: 'does not require this check in their configuration',
}

export function providersFragment(rows: ProviderRow[], held: HeldRow[] = []): string {
  return html`${held.map(
    (h) =>
      html`<p class="error" role="alert" data-hint="held" data-check="${h.check}" data-campaign="${h.campaign}">Held, not decided: ${fmtCount(h.records)} record(s) of campaign <strong dir="auto">${h.campaign}</strong> (check ${h.check}) in the last 10 s — the campaign ${HELD_WHY[h.reason] ?? h.reason} of ${h.processes} checker process(es). They wait in the delay tiers, no attempt spent, until a checker configured for it takes them: deploy the configuration that has it.</p>`,
  )}<table class="num">
<thead><tr><th><bdi>check</bdi></th><th><bdi>checkers</bdi></th><th><bdi>calls/s</bdi></th><th><bdi>finished/s</bdi></th><th><bdi>p50</bdi></th><th><bdi>p99</bdi></th><th><bdi>errors</bdi></th><th><bdi>429/s</bdi></th><th><bdi>retried/s</bdi></th><th><bdi>parked/s</bdi></th><th><bdi>circuit</bdi></th><th><bdi>quota used</bdi></th></tr></thead>
<tbody>
${rows.map(
  (p) =>
    html`<tr data-check="${p.check}"><td class="name">${p.check}</td><td>${p.checkers}</td><td>${fmtRate(p.calls_per_s)}</td><td>${fmtRate(p.finished_per_s)}</td><td>${fmtMs(p.p50_ms)}</td><td>${fmtMs(p.p99_ms)}</td><td class="${p.error_rate ? 'bad' : ''}">${fmtPct(p.error_rate)}</td><td>${fmtRate(p.rate_limited_per_s)}</td><td>${fmtRate(p.retried_per_s)}</td><td>${fmtRate(p.parked_per_s)}</td><td data-col="circuit" class="${p.circuit ? CIRCUIT_CLASS[p.circuit] : ''}">${p.circuit ?? 'no checker'}${p.circuit && p.checkers > 1 ? ` (${p.circuit_processes} of ${p.checkers})` : ''}</td><td title="${p.rate_limit_per_s === null ? '' : `of ${p.rate_limit_per_s}/s configured`}">${fmtPct(p.quota_used)}${p.rate_limit_per_s === null ? '' : html` <span class="sub">of ${fmtRate(p.rate_limit_per_s)}/s</span>`}</td></tr>`,
)}
</tbody>
</table>
<p class="note">p50/p99 interpolated from the latency histogram's buckets; errors = failed calls ÷ calls (5xx, 408, other 4xx, timeouts, connection errors); quota used = calls/s ÷ the provider's configured rate limit. Row <em>sms</em> (where citizens are sent SMS): texts the SMS provider was asked to take, finished/s = taken; parked/s = held while its circuit is open; it has no latency histogram.</p>`
    .s
}

const STATUSES = ['recorded', 'verifying', 'accepted', 'rejected', 'failed', 'waiting', 'duplicate'] as const

export function countsFragment(c: StatusCounts): string {
  const campaigns = Object.keys(c.byCampaign).sort()
  return html`<table class="num" id="counts-table">
<thead><tr><th><bdi>campaign</bdi></th>${STATUSES.map((s) => html`<th><bdi>${s}</bdi></th>`)}</tr></thead>
<tbody>
${campaigns.map(
  (k) =>
    html`<tr><td class="name" dir="auto">${k}</td>${STATUSES.map((s) => html`<td>${fmtCount(c.byCampaign[k]![s] ?? 0)}</td>`)}</tr>`,
)}
<tr class="total"><td>all</td>${STATUSES.map((s) => html`<td data-status="${s}">${fmtCount(c.total[s] ?? 0)}</td>`)}</tr>
</tbody>
</table>
<p class="note">From PostgreSQL at ${c.at.slice(11, 19)} UTC. Registrations not yet recorded are in the intake queue above.</p>`
    .s
}

/**
 * The "top rejection reasons" of each campaign: why checks said no, by check and reason code, with
 * each one's share of the campaign's "no"s — in the last hour and all time. Codes only: the
 * providers' words are personal data and stay in the lookup of one registration.
 */
export function reasonsFragment(rows: ReasonCount[], top = 10): string {
  if (rows.length === 0) return html`<p class="note">No check has said no yet.</p>`.s
  const byCampaign = new Map<string, ReasonCount[]>()
  for (const r of rows) byCampaign.set(r.campaign, [...(byCampaign.get(r.campaign) ?? []), r])
  const pct = (n: number, of: number) => (of > 0 ? fmtPct(n / of) : DASH)
  return html`${[...byCampaign].map(([campaign, list]) => {
    const total = list.reduce((a, r) => a + r.total, 0)
    const hour = list.reduce((a, r) => a + r.last_hour, 0)
    return html`<table class="num reasons" data-campaign="${campaign}">
<caption dir="auto">${campaign}</caption>
<thead><tr><th><bdi>check</bdi></th><th><bdi>reason</bdi></th><th><bdi>last hour</bdi></th><th><bdi>share</bdi></th><th><bdi>all time</bdi></th><th><bdi>share</bdi></th></tr></thead>
<tbody>
${list
  .slice(0, top)
  .map(
    (r) =>
      html`<tr data-check="${r.check}" data-reason="${r.reason}"><td class="name">${r.check}</td><td class="name mono">${r.reason}</td><td data-col="hour">${fmtCount(r.last_hour)}</td><td data-col="hour-share">${pct(r.last_hour, hour)}</td><td data-col="total">${fmtCount(r.total)}</td><td data-col="total-share">${pct(r.total, total)}</td></tr>`,
  )}
<tr class="total"><td>all</td><td></td><td>${fmtCount(hour)}</td><td></td><td>${fmtCount(total)}</td><td></td></tr>
</tbody></table>`
  })}<p class="note">Failed checks by reason code, from PostgreSQL (<code>sabt_check_rejections_total</code> counts them as they happen).</p>`
    .s
}

export function replicaFragment(l: ReplicaLag | null): string {
  if (!l)
    return html`<p class="error">The read replica is not reachable; lookups are answered by the primary.</p>`
      .s
  if (!l.standby)
    return html`<p class="error">DATABASE_READ_URL is not a standby (pg_is_in_recovery() is false).</p>`.s
  const kb = l.bytes === null ? DASH : l.bytes < 1024 ? `${l.bytes} B` : `${(l.bytes / 1024).toFixed(0)} KiB`
  const behind = l.seconds === null ? DASH : `${l.seconds.toFixed(1)} s`
  return html`<table id="replica-lag"><tbody>
<tr><th>behind the primary</th><td class="num" data-field="lag_bytes">${kb}</td></tr>
<tr><th>last replayed change</th><td class="num" data-field="lag_seconds">${behind}</td></tr>
<tr class="${l.replaying ? '' : 'bad'}"><th>replay</th><td data-field="replaying">${l.replaying ? 'running' : 'paused'}</td></tr>
</tbody></table>
<p class="note">At ${l.at.slice(11, 19)} UTC. A lookup the replica cannot answer yet is asked of the primary.</p>`
    .s
}

export function deadFragment(d: DeadList, note?: string): string {
  const checks = Object.entries(d.byCheck).filter(([, n]) => n > 0)
  // The note of an action goes out of band to #dead-note, outside the polled list, so it stays.
  return html`${note ? html`<p id="dead-note" class="notice" role="status" hx-swap-oob="true">${note}</p>` : ''}
<p><strong>Dead-lettered: <span id="dead-total" data-total="${d.total}">${fmtCount(d.total)}</span></strong>
 <span class="sub">(recorded in PostgreSQL; messages in the dead-letter queue: ${fmtCount(d.queued)})</span></p>
${
  checks.length
    ? html`<div class="actions">${checks.map(
        ([check, n]) =>
          html`<button type="button" class="replay" data-check="${check}" hx-post="/dashboard/actions/replay" hx-vals='${JSON.stringify({ check })}' hx-target="#dead" hx-swap="innerHTML" hx-confirm="Replay ${n} dead-lettered ${check} check(s)?">Replay ${check} (${fmtCount(n)})</button>`,
      )}${checks.length > 1 ? html`<button type="button" class="replay" data-check="" hx-post="/dashboard/actions/replay" hx-target="#dead" hx-swap="innerHTML" hx-confirm="Replay every dead letter?">Replay all</button>` : ''}</div>`
    : html`<p class="ok">Nothing is dead-lettered.</p>`
}
${
  d.items.length
    ? html`<table id="dead-items"><thead><tr><th><bdi>registration</bdi></th><th><bdi>check</bdi></th><th><bdi>attempts</bdi></th><th><bdi>last error</bdi></th><th><bdi>dead since</bdi></th></tr></thead><tbody>
${d.items.map(
  (i) =>
    html`<tr><td class="mono">${i.registration_id}</td><td>${i.check}</td><td class="num">${i.attempts}</td><td dir="auto">${i.last_error ?? DASH}</td><td class="ltr">${i.dead_at.replace('T', ' ').slice(0, 19)}</td></tr>`,
)}
</tbody></table>${d.total > d.items.length ? html`<p class="note">The latest ${d.items.length} of ${fmtCount(d.total)}.</p>` : ''}`
    : ''
}`.s
}

export function processesFragment(rows: ProcessRow[], brokerUp: boolean): string {
  if (rows.length === 0)
    return html`<p class="error">No process has published stats${brokerUp ? ' yet' : ': RabbitMQ is not reachable'}; live rates are unknown.</p>`
      .s
  return html`<table><thead><tr><th><bdi>roles</bdi></th><th><bdi>host</bdi></th><th><bdi>pid</bdi></th><th><bdi>up for</bdi></th><th><bdi>last snapshot</bdi></th></tr></thead><tbody>
${rows.map(
  (p) =>
    html`<tr class="${p.stale ? 'bad' : ''}"><td>${p.roles.join(', ')}</td><td>${p.host}</td><td class="num">${p.pid}</td><td class="ltr">${fmtDuration((Date.now() - p.started_at) / 1000)}</td><td class="ltr">${p.stale ? `stale: ${fmtDuration(p.last_seen_ms / 1000)} ago` : `${(p.last_seen_ms / 1000).toFixed(1)} s ago`}</td></tr>`,
)}
</tbody></table>`.s
}

function recordView(r: OperatorRecord): Raw {
  return html`<article class="record" data-id="${r.id}">
<h3><span class="mono">${r.id}</span> <span class="status s-${r.status}" data-status="${r.status}">${r.status}</span></h3>
<dl>
  <dt>name</dt><dd><bdi class="person" dir="auto">${r.first_name ?? DASH} ${r.last_name ?? ''}</bdi></dd>
  <dt>national id</dt><dd class="mono" data-field="national_id">${r.national_id ?? 'erased'}</dd>
  <dt>mobile</dt><dd class="mono" data-field="mobile">${r.mobile ?? 'erased'}</dd>
  <dt>campaign</dt><dd dir="auto">${r.campaign}</dd>
  <dt>received</dt><dd class="ltr">${r.received_at}</dd>
  <dt>recorded</dt><dd class="ltr">${r.recorded_at}</dd>
  <dt>verdict</dt><dd class="ltr">${r.verdict_at ?? DASH}</dd>
  ${r.duplicates ? html`<dt>duplicates</dt><dd>${r.duplicates} later submission(s) kept as duplicates</dd>` : ''}
  ${r.promoted_from ? html`<dt>took the place of</dt><dd class="mono">${r.promoted_from}</dd>` : ''}
  ${r.holds_place || r.national_id === null ? '' : html`<dt>place</dt><dd>given up: a later submission of the person may be checked</dd>`}
</dl>
${
  r.checks.length
    ? html`<table class="checks"><thead><tr><th><bdi>check</bdi></th><th><bdi>outcome</bdi></th><th><bdi>attempts</bdi></th><th><bdi>latency</bdi></th><th><bdi>reason</bdi></th><th><bdi>last error</bdi></th></tr></thead><tbody>
${r.checks.map((c) => html`<tr data-check="${c.check}"><td>${c.check}</td><td class="o-${c.outcome}">${c.outcome}</td><td class="num">${c.attempts}</td><td class="num">${c.latency_ms === null ? DASH : `${c.latency_ms} ms`}</td><td class="reason">${c.reason ? html`<span class="mono" data-reason="${c.reason.code}">${c.reason.code}</span>${c.reason.text ? html` — <bdi dir="auto">${c.reason.text}</bdi>` : ''}` : ''}</td><td dir="auto">${c.last_error ?? ''}</td></tr>`)}
</tbody></table>`
    : ''
}
</article>`
}

export function lookupFragment(l: OperatorLookup): string {
  switch (l.kind) {
    case 'invalid':
      return html`<p class="error" role="alert">${l.message}</p>`.s
    case 'not_found':
      return html`<p class="notice">No registration ${l.by === 'id' ? 'with this id' : 'for this national id'}.</p>`
        .s
    case 'queued':
      return html`<p class="notice">Registration <span class="mono">${l.id}</span> is <strong>queued</strong>: taken by the gateway at ${l.received_at}, not recorded yet.</p>`
        .s
    case 'duplicate':
      return html`<p class="notice">Registration <span class="mono">${l.id}</span> (${l.received_at}) is a <strong>duplicate</strong> of <span class="mono">${l.original_id}</span>:</p>${l.original ? recordView(l.original) : ''}`
        .s
    case 'waiting':
      return html`<p class="notice">Registration <span class="mono">${l.id}</span> (${l.received_at}) is <strong>waiting</strong> beside the person's record being checked; it takes that record's place if it is rejected or fails:</p>${l.holder ? recordView(l.holder) : ''}`
        .s
    case 'records':
      return html`${l.records.length > 1 ? html`<p class="note">${l.records.length} records.</p>` : ''}${l.records.map(recordView)}`
        .s
  }
}
