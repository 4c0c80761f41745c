// The citizen page (issue 14 item 4): register (with the proof of work when the campaign has the
// gate), show the tracking code, look a registration up with a one-time code. No build step.
;(() => {
  const params = new URLSearchParams(location.search)
  const campaign = params.get('campaign') || 'demo'
  const $ = (id) => document.getElementById(id)
  const STATUS = {
    queued: 'در صف ثبت',
    recorded: 'ثبت شد، در انتظار بررسی',
    verifying: 'در حال بررسی',
    accepted: 'پذیرفته شد',
    rejected: 'پذیرفته نشد',
    failed: 'بررسی ممکن نشد؛ دوباره بررسی می‌شود',
    waiting: 'در انتظار',
    duplicate: 'تکراری: پیش‌تر ثبت‌نام کرده‌اید',
  }
  const say = (el, text, error = false) => {
    el.textContent = text
    el.classList.toggle('error', error)
  }
  const persianDigits = (s) => String(s).replace(/[0-9]/g, (d) => '۰۱۲۳۴۵۶۷۸۹'[d])
  const form = (f) => Object.fromEntries(new FormData(f).entries())

  fetch(`/v1/campaigns/${encodeURIComponent(campaign)}`)
    .then((r) => (r.ok ? r.json() : null))
    .then((c) => {
      if (c?.title) $('title').textContent = c.title
    })
    .catch(() => {})

  const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, '0')).join('')

  /** ALTCHA's challenge: the number n ≤ maxnumber with SHA-256(salt + n) = challenge. */
  async function proofOfWork() {
    const r = await fetch(`/v1/campaigns/${encodeURIComponent(campaign)}/challenge`)
    if (r.status === 404) return null // no gate for this campaign
    if (!r.ok) throw new Error('challenge')
    const c = await r.json()
    const enc = new TextEncoder()
    for (let n = 0; n <= (c.maxnumber ?? 1e6); n++) {
      if (hex(await crypto.subtle.digest('SHA-256', enc.encode(c.salt + n))) === c.challenge)
        return btoa(
          JSON.stringify({
            algorithm: c.algorithm,
            challenge: c.challenge,
            number: n,
            salt: c.salt,
            signature: c.signature,
          }),
        )
    }
    throw new Error('unsolved')
  }

  async function trackingCode(id) {
    for (let i = 0; i < 60; i++) {
      const r = await fetch(`/v1/campaigns/${encodeURIComponent(campaign)}/registrations/${id}`)
      if (r.ok) {
        const s = await r.json()
        $('receipt-status').textContent = `وضعیت: ${STATUS[s.status] ?? s.status}`
        if (s.tracking_code) return s.tracking_code
      }
      await new Promise((res) => setTimeout(res, 500))
    }
    return null
  }

  let countdown = null
  $('register').addEventListener('submit', async (e) => {
    e.preventDefault()
    const msg = $('register-message')
    const button = $('register-button')
    button.disabled = true
    try {
      say(msg, 'در حال آماده‌سازی…')
      const altcha = await proofOfWork()
      say(msg, 'در حال ارسال…')
      const body = { campaign, ...form(e.target) }
      const r = await fetch('/v1/registrations', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(altcha ? { 'x-altcha': altcha } : {}) },
        body: JSON.stringify(body),
      })
      const answer = await r.json().catch(() => ({}))
      if (r.status === 202) {
        say(msg, '')
        e.target.hidden = true
        $('receipt').hidden = false
        const code = await trackingCode(answer.id)
        $('tracking-code').textContent = code ?? answer.id
        return
      }
      if (r.status === 503 || r.status === 429) {
        let left = Number(r.headers.get('retry-after')) || 5
        clearInterval(countdown)
        const tick = () => {
          say(msg, `سامانه شلوغ است؛ ${persianDigits(left)} ثانیه دیگر دوباره تلاش کنید.`, true)
          if (left-- <= 0) {
            clearInterval(countdown)
            say(msg, 'اکنون دوباره تلاش کنید.', true)
            button.disabled = false
          }
        }
        tick()
        countdown = setInterval(tick, 1000)
        return
      }
      const fields = (answer.errors ?? []).map((x) => x.field).join('، ')
      say(msg, `ثبت نشد${fields ? `: ${fields}` : ''} (${answer.message ?? r.status})`, true)
    } catch {
      say(msg, 'ارتباط برقرار نشد؛ دوباره تلاش کنید.', true)
    }
    button.disabled = false
  })

  let person = null
  $('lookup').addEventListener('submit', async (e) => {
    e.preventDefault()
    const msg = $('lookup-message')
    person = form(e.target)
    const r = await fetch(`/v1/campaigns/${encodeURIComponent(campaign)}/lookup`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(person),
    })
    if (r.status === 202) {
      say(msg, '')
      $('verify').hidden = false
      return
    }
    const wait = Number(r.headers.get('retry-after'))
    say(
      msg,
      r.status === 429
        ? `درخواست‌ها بیش از حد مجاز است؛ ${persianDigits(Math.ceil(wait / 60) || 1)} دقیقه دیگر.`
        : 'کد ملی یا شماره همراه درست نیست.',
      true,
    )
  })

  $('verify').addEventListener('submit', async (e) => {
    e.preventDefault()
    const msg = $('lookup-message')
    const r = await fetch(`/v1/campaigns/${encodeURIComponent(campaign)}/lookup/verify`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...person, ...form(e.target) }),
    })
    const answer = await r.json().catch(() => ({}))
    if (r.ok) {
      say(msg, '')
      $('lookup-result').hidden = false
      $('lookup-status').textContent = STATUS[answer.status] ?? answer.status
      $('lookup-code').textContent = answer.tracking_code ?? ''
      return
    }
    say(
      msg,
      r.status === 429 ? 'کد نادرست بیش از حد؛ بعداً کد تازه بخواهید.' : 'کد نادرست یا منقضی است.',
      true,
    )
  })
})()
