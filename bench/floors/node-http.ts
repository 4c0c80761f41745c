/** Floor 1: a bare node:http server that reads the body and answers 202 (nothing else). */
import { createServer } from 'node:http'

const body = '{"status":"accepted"}'
const server = createServer((req, res) => {
  req.on('data', () => {})
  req.on('end', () => {
    res.writeHead(202, { 'content-type': 'application/json', 'content-length': body.length })
    res.end(body)
  })
})
server.keepAliveTimeout = 75_000
server.listen(Number(process.env.PORT ?? 8081), '127.0.0.1')
process.on('SIGTERM', () => server.close(() => process.exit(0)))
