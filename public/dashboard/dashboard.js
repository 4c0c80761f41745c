// The dashboard's charts: polls /dashboard/series once a second and redraws four uPlot charts.
// Plain ES module, no build step. The tables are htmx fragments (see the page's hx-* attributes).
/* global uPlot, htmx */

const POLL_MS = 1000
const KEEP = 300 // points: five minutes at one a second
const PALETTE = [
  '#1b7f3b',
  '#c0392b',
  '#e67e22',
  '#2c6fbb',
  '#8e44ad',
  '#16a085',
  '#7f8c8d',
  '#d35400',
  '#34495e',
]

const section = document.getElementById('charts')
const checks = section.dataset.checks ? section.dataset.checks.split(',') : []
const queues = section.dataset.queues ? section.dataset.queues.split('|') : []

const data = {
  t: [],
  accepted_req: [],
  rejected_req: [],
  shed_req: [],
  accepted_reg: [],
  recorded: [],
  checks: Object.fromEntries(checks.map((c) => [c, []])),
  depth: Object.fromEntries(queues.map((q) => [q, []])),
}
let last = 0

function chart(id, labels) {
  const el = document.getElementById(id)
  const opts = {
    width: Math.max(300, el.clientWidth),
    height: 190,
    scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
    axes: [{}, { size: 56 }],
    series: [
      {},
      ...labels.map((label, i) => ({
        label,
        stroke: PALETTE[i % PALETTE.length],
        width: 1.5,
        // Drawn dashed when it is a second view of another series (registrations vs requests).
        dash: label.startsWith('registrations') ? [6, 4] : undefined,
      })),
    ],
    legend: { live: false },
  }
  return new uPlot(opts, [[], ...labels.map(() => [])], el)
}

const charts = {
  intake: chart('chart-intake', [
    'accepted req/s',
    'rejected req/s',
    'shed/failed req/s',
    'registrations accepted/s',
  ]),
  recorded: chart('chart-recorded', ['recorded/s']),
  checks: chart('chart-checks', checks),
  queues: chart('chart-queues', queues),
}

function append(target, source) {
  for (const v of source) target.push(v)
  if (target.length > KEEP) target.splice(0, target.length - KEEP)
}

function fmt(v) {
  if (v === null || v === undefined) return '—'
  if (v === 0) return '0'
  return v < 10 ? v.toFixed(1) : Math.round(v).toLocaleString('en-US')
}

function lastValue(column) {
  for (let i = column.length - 1; i >= 0; i--) if (column[i] !== null) return column[i]
  return null
}

function redraw() {
  const xs = data.t.map((t) => t / 1000)
  charts.intake.setData([xs, data.accepted_req, data.rejected_req, data.shed_req, data.accepted_reg])
  charts.recorded.setData([xs, data.recorded])
  charts.checks.setData([xs, ...checks.map((c) => data.checks[c])])
  charts.queues.setData([xs, ...queues.map((q) => data.depth[q])])
  document.getElementById('now-accepted').textContent = fmt(lastValue(data.accepted_req))
  document.getElementById('now-rejected').textContent = fmt(lastValue(data.rejected_req))
  document.getElementById('now-shed').textContent = fmt(lastValue(data.shed_req))
  document.getElementById('now-recorded').textContent = fmt(lastValue(data.recorded))
  const perCheck = checks.map((c) => lastValue(data.checks[c]))
  document.getElementById('now-checks').textContent = perCheck.every((v) => v === null)
    ? '—'
    : fmt(perCheck.reduce((a, v) => a + (v ?? 0), 0))
  section.dataset.points = String(data.t.length)
  section.dataset.last = String(last)
}

async function poll() {
  try {
    const res = await fetch(`/dashboard/series?since=${last}`, { credentials: 'same-origin' })
    if (res.status === 401) {
      location.href = '/dashboard/login'
      return
    }
    if (!res.ok) throw new Error(`series: ${res.status}`)
    const s = await res.json()
    if (s.t.length > 0) {
      append(data.t, s.t)
      for (const k of ['accepted_req', 'rejected_req', 'shed_req', 'accepted_reg', 'recorded'])
        append(data[k], s[k])
      for (const c of checks) append(data.checks[c], s.checks[c] ?? s.t.map(() => null))
      for (const q of queues) append(data.depth[q], s.depth[q] ?? s.t.map(() => null))
      last = s.t[s.t.length - 1]
      redraw()
    }
    section.classList.remove('stale')
  } catch {
    section.classList.add('stale')
  } finally {
    setTimeout(poll, POLL_MS)
  }
}
poll()

window.addEventListener('resize', () => {
  for (const c of Object.values(charts))
    c.setSize({ width: Math.max(300, c.root.parentElement.clientWidth), height: 190 })
})

// An expired session: the fragments answer 401; go and sign in again.
document.body.addEventListener('htmx:responseError', (e) => {
  if (e.detail.xhr.status === 401) location.href = '/dashboard/login'
})

// Right-to-left reading: flip the whole page (tables, alignment) and remember the choice.
const toggle = document.getElementById('dir-toggle')
const applyDir = (dir) => {
  document.documentElement.dir = dir
}
applyDir(localStorage.getItem('sabt.dir') ?? 'ltr')
toggle.addEventListener('click', () => {
  const dir = document.documentElement.dir === 'rtl' ? 'ltr' : 'rtl'
  localStorage.setItem('sabt.dir', dir)
  applyDir(dir)
})
