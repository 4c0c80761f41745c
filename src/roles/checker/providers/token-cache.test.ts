import { once } from 'node:events'
import { createServer } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TokenCache } from './auth.js'

describe('OAuth2 token cache', () => {
  let issued = 0
  let expiresIn = 3600
  let down = false
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      if (down) return void res.writeHead(503).end()
      issued++
      // Slow enough that concurrent callers overlap with the fetch.
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ access_token: `t${issued}`, expires_in: expiresIn }))
      }, 20)
    })
  })
  let url = ''
  beforeAll(async () => {
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}/token`
  })
  afterAll(() => {
    server.close()
  })
  const auth = () =>
    ({ type: 'oauth2_client_credentials', token_url: url, client_id: 'c', client_secret: 's' }) as const

  it('one fetch for many concurrent calls; one more at expiry; one on a 401 however many calls met it', async () => {
    issued = 0
    expiresIn = 3600
    let now = 1_000_000
    const c = new TokenCache(auth(), () => now)
    const first = await Promise.all(Array.from({ length: 200 }, () => c.get()))
    expect(new Set(first)).toEqual(new Set(['t1']))
    expect(c.fetches).toBe(1)
    now += 3600_000 - 29_000 // within refresh_before_s (30 s) of expiry
    expect(new Set(await Promise.all(Array.from({ length: 50 }, () => c.get())))).toEqual(new Set(['t2']))
    expect(c.fetches).toBe(2)
    // 50 calls refused with t2: one new token for all of them; a late one refused with t2 takes t3.
    expect(new Set(await Promise.all(Array.from({ length: 50 }, () => c.renew('t2'))))).toEqual(
      new Set(['t3']),
    )
    expect(await c.renew('t2')).toBe('t3')
    expect(c.fetches).toBe(3)
  })

  it('a short-lived token is not fetched per call; a token endpoint that is down is asked at most once a second', async () => {
    issued = 0
    expiresIn = 10 // shorter than twice refresh_before_s: refreshed at half its life
    let now = 2_000_000
    const c = new TokenCache(auth(), () => now)
    await c.get()
    now += 4000
    await c.get()
    expect(c.fetches).toBe(1)
    now += 2000
    await c.get()
    expect(c.fetches).toBe(2)
    down = true
    now += 60_000
    await expect(c.get()).rejects.toThrow(/token endpoint answered 503/)
    await expect(Promise.all(Array.from({ length: 20 }, () => c.get()))).rejects.toThrow(/503/)
    expect(c.fetches).toBe(3)
    down = false
    now += 1001
    expect(await c.get()).toBe('t3')
    expect(c.fetches).toBe(4)
  })
})
