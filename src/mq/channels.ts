import type { Channel, ChannelModel } from 'amqplib'

/**
 * Closes a channel or a connection, waiting at most `ms` for the broker's close-ok: a broker that
 * does not answer (frozen, under an alarm, gone) must never hold a shutdown, a reconnection or a
 * snapshot hostage. `onLate` runs when the wait ran out (a connection cuts its socket there). The
 * one copy of this race in Sabt.
 */
export async function closeWithin(
  closable: { close(): Promise<unknown> } | null | undefined,
  ms = 1000,
  onLate?: () => void,
): Promise<void> {
  if (!closable) return
  let timer: NodeJS.Timeout | undefined
  await Promise.race([
    closable.close().catch(() => {}),
    new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        onLate?.()
        resolve()
      }, ms)
    }),
  ])
  clearTimeout(timer)
}

/** A plain channel whose errors are the caller's to see in what it awaits, never an unhandled event. */
export async function openChannel(model: ChannelModel, onError?: (err: Error) => void): Promise<Channel> {
  const ch = await model.createChannel()
  ch.on('error', (err: Error) => onError?.(err))
  return ch
}
