import type { Socket } from 'node:net'
import type { FieldError } from '../domain/registration.js'
import { ApiError, type ErrorCode } from './errors.js'
import type { HttpLimits } from './limits.js'

/**
 * Node's answer to malformed HTTP, headers too large, or a client too slow to send its request —
 * before Fastify sees a request at all: the same JSON error body as every other refusal.
 */
export function clientErrorHandler(limits: HttpLimits) {
  return (err: NodeJS.ErrnoException, socket: Socket): void => {
    // Malformed HTTP, headers too large, or a client too slow to send its request.
    if (socket.destroyed) return
    const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage
    const [status, code, fieldError]: [string, ErrorCode, FieldError] =
      err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [
            '408 Request Timeout',
            'SABT_REQUEST_TIMEOUT',
            // A response object exists once the headers are in: then it is the body that was late.
            inFlight
              ? {
                  field: '(body)',
                  rule: 'timeout',
                  message: `must arrive within ${limits.requestTimeoutMs} ms`,
                }
              : {
                  field: '(headers)',
                  rule: 'timeout',
                  message: `must arrive within ${limits.headersTimeoutMs} ms`,
                },
          ]
        : err.code === 'HPE_HEADER_OVERFLOW'
          ? [
              '431 Request Header Fields Too Large',
              'SABT_HEADERS_TOO_LARGE',
              {
                field: '(headers)',
                rule: 'max_bytes',
                message: `must be at most ${limits.maxHeaderBytes} bytes`,
              },
            ]
          : [
              '400 Bad Request',
              'SABT_BAD_REQUEST',
              { field: '(request)', rule: 'http', message: 'must be a well-formed HTTP/1.1 request' },
            ]
    // Answer only when no response has started on this socket (Node's own rule: a second status
    // line in the middle of a response would corrupt it), then let go of the socket once the answer
    // is flushed. `end()` alone is not enough: the HTTP server allows half-open sockets, so a client
    // that keeps sending would keep it (and its slot) forever.
    if (socket.writable && !inFlight?.headersSent) {
      const body = JSON.stringify(new ApiError(code, [fieldError]).body())
      socket.end(
        `HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      )
    }
    socket.destroySoon()
  }
}
