/**
 * Reads the AMQP 0-9-1 frames a client sends (from a TcpProxy tap) and counts the basic methods
 * that give a delivery back, so a test can see *how* a client requeues — basic.nack or
 * basic.reject — which RabbitMQ ≥ 4.3 counts differently toward a quorum queue's delivery limit.
 */
export class AmqpFrameCounter {
  #buf = Buffer.alloc(0)
  #headerSeen = false
  readonly counts = { nackRequeue: 0, nackDiscard: 0, rejectRequeue: 0, rejectDiscard: 0, ack: 0 }

  push = (chunk: Buffer): void => {
    this.#buf = Buffer.concat([this.#buf, chunk])
    if (!this.#headerSeen) {
      if (this.#buf.length < 8) return
      this.#buf = this.#buf.subarray(8) // "AMQP" 0 0 9 1
      this.#headerSeen = true
    }
    // frame: type(1) channel(2) size(4) payload(size) end(0xCE)
    while (this.#buf.length >= 7) {
      const size = this.#buf.readUInt32BE(3)
      if (this.#buf.length < 7 + size + 1) return
      const type = this.#buf[0]
      const payload = this.#buf.subarray(7, 7 + size)
      if (type === 1 && payload.length >= 4 && payload.readUInt16BE(0) === 60) {
        const method = payload.readUInt16BE(2)
        const bits = payload.length >= 13 ? payload[12]! : 0
        if (method === 80) this.counts.ack++
        if (method === 90) bits & 1 ? this.counts.rejectRequeue++ : this.counts.rejectDiscard++ // requeue: bit 0
        if (method === 120) bits & 2 ? this.counts.nackRequeue++ : this.counts.nackDiscard++ // multiple: bit 0, requeue: bit 1
      }
      this.#buf = this.#buf.subarray(7 + size + 1)
    }
  }
}
