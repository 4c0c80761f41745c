import { isUtf8 } from 'node:buffer'
import { expect } from 'vitest'
import { ERRORS } from '../../src/http/errors.js'
import { JSON_TYPES } from './hostile-json.js'

/**
 * What the gateway must answer to a body, worked out independently of it: the order in which
 * an HTTP JSON API must refuse things (media type, size, encoding, syntax, forbidden keys), and
 * what every error answer must look like.
 */

export interface FieldError {
  field: string
  rule: string
  message: string
}
export interface ErrorBody {
  statusCode: number
  code: string
  message: string
  errors?: FieldError[]
}

export type Expected =
  | { status: 415 | 413; code: string }
  | {
      status: 400
      code: 'SABT_INVALID_ENCODING' | 'SABT_INVALID_JSON'
      rule: 'utf8' | 'json' | 'forbidden_key'
    }
  | { status: 'parsed'; value: unknown }

export function expectedFor(body: Buffer, contentType: string | null, limit: number): Expected {
  // No content type and no body: a request without a body, which the schema refuses ("(body)").
  if (contentType === null && body.length === 0) return { status: 'parsed', value: undefined }
  if (contentType === null || !JSON_TYPES.includes(contentType))
    return { status: 415, code: 'SABT_UNSUPPORTED_MEDIA_TYPE' }
  if (body.length > limit) return { status: 413, code: 'SABT_BODY_TOO_LARGE' }
  if (!isUtf8(body)) return { status: 400, code: 'SABT_INVALID_ENCODING', rule: 'utf8' }
  let text = body.toString('utf8')
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1) // a BOM is tolerated (RFC 8259 §8.1)
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return { status: 400, code: 'SABT_INVALID_JSON', rule: 'json' }
  }
  if (hasForbiddenKey(value)) return { status: 400, code: 'SABT_INVALID_JSON', rule: 'forbidden_key' }
  return { status: 'parsed', value }
}

/** An own `__proto__` anywhere, or a `constructor` object with a `prototype` (iteratively: depth is hostile too). */
export function hasForbiddenKey(root: unknown): boolean {
  const stack: unknown[] = [root]
  while (stack.length > 0) {
    const v = stack.pop()
    if (v === null || typeof v !== 'object') continue
    if (Object.hasOwn(v, '__proto__')) return true
    const c = (v as Record<string, unknown>).constructor
    if (
      Object.hasOwn(v, 'constructor') &&
      c !== null &&
      typeof c === 'object' &&
      Object.hasOwn(c, 'prototype')
    )
      return true
    for (const k of Object.keys(v)) stack.push((v as Record<string, unknown>)[k])
  }
  return false
}

/**
 * Reads a field path as clients are told to: segments joined by `.`, and a segment that is not a
 * plain name written `["…"]` (a JSON string). `(body)` is the whole body.
 */
export function readFieldPath(field: string): string[] | null {
  if (field === '(body)') return []
  const out: string[] = []
  let i = 0
  while (i < field.length) {
    if (field[i] === '[') {
      if (field[i + 1] !== '"') return null
      let j = i + 2
      while (j < field.length && field[j] !== '"') j += field[j] === '\\' ? 2 : 1
      if (field[j + 1] !== ']') return null
      try {
        out.push(JSON.parse(field.slice(i + 1, j + 1)))
      } catch {
        return null
      }
      i = j + 2
    } else {
      let j = i
      while (j < field.length && field[j] !== '.' && field[j] !== '[') j++
      if (j === i) return null
      out.push(field.slice(i, j))
      i = j
    }
    if (field[i] === '.') {
      i++
      if (i === field.length) return null
    }
  }
  return out
}

function locate(root: unknown, path: string[]): { found: boolean; parentFound: boolean } {
  let v: unknown = root
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]!
    const last = i === path.length - 1
    const has =
      v !== null &&
      typeof v === 'object' &&
      (Array.isArray(v) ? /^(0|[1-9][0-9]*)$/.test(seg) && Number(seg) < v.length : Object.hasOwn(v, seg))
    if (!has) return { found: false, parentFound: last && v !== null && typeof v === 'object' }
    v = (v as Record<string, unknown>)[seg]
  }
  return { found: true, parentFound: true }
}

/**
 * Every error answer: JSON in the catalogue's shape, its status the catalogue's, and at least one
 * field error, each naming a field and a rule. When the body was parsed, each field must point
 * into it: at what is there, or, for `required`, at what is missing from an object that is there.
 */
export function expectErrorBody(status: number, body: ErrorBody, parsed?: { value: unknown }): void {
  expect(status).toBeGreaterThanOrEqual(400)
  expect(status).toBeLessThan(500)
  expect(body.statusCode).toBe(status)
  expect(Object.keys(ERRORS)).toContain(body.code)
  expect(ERRORS[body.code as keyof typeof ERRORS].status).toBe(status)
  expect(typeof body.message).toBe('string')
  expect(body.message.length).toBeGreaterThan(0)
  expect(Array.isArray(body.errors) && body.errors.length > 0, `${body.code} names no field`).toBe(true)
  for (const e of body.errors!) {
    for (const k of ['field', 'rule', 'message'] as const) {
      expect(typeof e[k]).toBe('string')
      expect(e[k].length).toBeGreaterThan(0)
    }
    if (!parsed || e.field === 'content-type') continue
    const path = readFieldPath(e.field)
    expect(path, `unreadable field path ${JSON.stringify(e.field)}`).not.toBeNull()
    const where = locate(parsed.value, path!)
    if (e.rule === 'required')
      expect(where, `${JSON.stringify(e.field)} (${e.rule})`).toEqual({ found: false, parentFound: true })
    else expect(where.found, `${JSON.stringify(e.field)} (${e.rule}) is not in the body`).toBe(true)
  }
}
