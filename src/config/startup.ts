import { ConfigError } from './env.js'

/**
 * What a newcomer sees when something Sabt needs is not there at start: one line naming the
 * service or port, the variable that sets it, and what to do — never a stack trace. (The CLI
 * prints a ConfigError's message alone.)
 */
export class StartupError extends ConfigError {
  override name = 'StartupError'
}

/** host:port of a URL, without credentials. */
export function address(url: string, defaultPort: number): string {
  try {
    const u = new URL(url)
    return `${u.hostname}:${u.port || defaultPort}`
  } catch {
    return '(unparseable URL)'
  }
}

/** A port that cannot be listened on, said as what to do. */
export function listenError(err: unknown, port: number, variable: string, what: string): Error {
  const code = (err as { code?: string }).code
  if (code === 'EADDRINUSE')
    return new StartupError(
      `port ${port} (${variable}, ${what}) is already in use: stop what listens there, or set ${variable} to a free port`,
    )
  if (code === 'EACCES')
    return new StartupError(
      `port ${port} (${variable}, ${what}) needs privileges: set ${variable} above 1023`,
    )
  if (code === 'EADDRNOTAVAIL')
    return new StartupError(
      `cannot listen for ${what} on this address (HOST): set HOST to one of this machine's`,
    )
  return err as Error
}
