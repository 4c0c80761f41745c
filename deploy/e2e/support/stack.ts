import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, setGlobalDispatcher } from 'undici'
import { parse } from 'yaml'
import { newKey } from '../../../src/privacy/sealing.js'
import { ROOT } from './paths.js'
import { run, runOk, until } from './run.js'

const hex = () => randomBytes(18).toString('hex')

/** What global-setup.ts hands every test file: the engine, the images, the open-files cap. */
export interface E2E {
  env: Record<string, string>
  /** Seconds the engine, base images and the Sabt image took (cold or warm). */
  setupSeconds: number
}

export interface ContainerState {
  id: string
  name: string
  service: string
  status: string
  health: string
  exitCode: number
}

/** Replica counts from docker-compose.yml's deploy.replicas: compose v1 ignores them, so they become --scale. */
export function scaleArgs(): string[] {
  const file = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
    services: Record<string, { deploy?: { replicas?: number } }>
  }
  return Object.entries(file.services)
    .filter(([, s]) => (s.deploy?.replicas ?? 1) > 1)
    .flatMap(([name, s]) => ['--scale', `${name}=${s.deploy!.replicas}`])
}

/**
 * One compose project of the real deployment: the project's own compose files plus the suite's
 * override, with fresh secrets, the edge published on a loopback port, and helpers to look at
 * and break its containers. Only `docker` and `docker compose` are used, as an operator would.
 */
export class Stack {
  /** Fresh secrets for every variable the compose files require (`${VAR:?…}`), made at run time. */
  readonly secrets: Record<string, string> = Object.fromEntries(
    [
      ['SABT_ADMIN_TOKEN', () => randomBytes(24).toString('base64url')],
      ['SABT_DATA_KEYS', () => `k1:${newKey()}`],
      ['SABT_INDEX_KEY', newKey],
      ['SABT_CALLBACK_SECRET', () => randomBytes(24).toString('base64url')],
      ['POSTGRES_PASSWORD', hex],
      ['RABBITMQ_PASSWORD', hex],
      ['RABBITMQ_ERLANG_COOKIE', hex],
      ['POSTGRES_REPLICATION_PASSWORD', hex],
      ['SABT_DB_GATEWAY_PASSWORD', hex],
      ['SABT_DB_RECORDER_PASSWORD', hex],
      ['SABT_DB_CHECKER_PASSWORD', hex],
      ['SABT_DB_STATUS_PASSWORD', hex],
    ].map(([name, make]) => [name as string, (make as () => string)()]),
  )

  /**
   * The operator's `.env`: a copy of .env.example with the secrets filled in (kept outside the
   * repository, so a developer's own .env is neither used nor touched).
   */
  readonly envFile: string
  /** The edge's certificate (edge.pem) and the test CA that signed it, made here at run time. */
  readonly tlsDir: string
  readonly ca: Buffer

  constructor(
    readonly project: string,
    readonly files: string[],
    readonly e2e: E2E,
    /** The public TLS entrypoint's loopback port (Traefik's :443). */
    readonly port: number,
    /** Traefik's :80 (a redirect) and the admin entrypoint :8443, on loopback. */
    readonly ports: { http: number; admin: number },
    /** Variables of this stack alone (another stack runs beside it on the same engine). */
    readonly own: Record<string, string> = {},
  ) {
    let text = readFileSync(join(ROOT, '.env.example'), 'utf8')
    for (const [k, v] of Object.entries(this.secrets)) {
      const line = new RegExp(`^${k}=$`, 'm')
      if (!line.test(text)) throw new Error(`.env.example has no empty ${k}= line to fill`)
      text = text.replace(line, `${k}=${v}`)
    }
    const dir = mkdtempSync(join(tmpdir(), 'sabt-e2e-'))
    this.envFile = join(dir, '.env')
    writeFileSync(this.envFile, text, { mode: 0o600 })
    this.tlsDir = join(dir, 'tls')
    this.ca = makeTestCertificate(this.tlsDir)
    // Every fetch of this test file (and undici's pools) trusts the test CA, and only it.
    setGlobalDispatcher(new Agent({ connect: { ca: this.ca } }))
  }

  /** The public entrypoint (TLS). */
  get url(): string {
    return `https://127.0.0.1:${this.port}`
  }

  /** The admin entrypoint (TLS, private addresses only). */
  get adminUrl(): string {
    return `https://127.0.0.1:${this.ports.admin}`
  }

  /** Plain HTTP: only a redirect to the public entrypoint. */
  get httpUrl(): string {
    return `http://127.0.0.1:${this.ports.http}`
  }

  get env(): Record<string, string> {
    return {
      ...this.e2e.env,
      SABT_E2E_HTTPS_PORT: String(this.port),
      SABT_E2E_HTTP_PORT: String(this.ports.http),
      SABT_E2E_ADMIN_PORT: String(this.ports.admin),
      SABT_E2E_TLS_DIR: this.tlsDir,
      // Traefik and its socket proxy cannot be obtained here (their profile is never enabled),
      // but compose interpolates every service: any name will do for their required images.
      TRAEFIK_IMAGE: 'sabt-e2e/no-traefik:absent',
      SOCKET_PROXY_IMAGE: 'sabt-e2e/no-socket-proxy:absent',
      HAPROXY_IMAGE: this.e2e.env.HAPROXY_IMAGE ?? '',
      // Every burst comes from one address (this test's): the per-client limit would answer most
      // of it 429. Its own tests are test/intake-limits.test.ts.
      SABT_CLIENT_RATE: '0',
      ...this.own,
    }
  }

  /** The arguments before a compose subcommand (`docker compose <these> up …`). */
  get composeArgs(): string[] {
    return [
      'compose',
      '--env-file',
      this.envFile,
      '-p',
      this.project,
      ...this.files.flatMap((f) => ['-f', f]),
      '--profile',
      'dev',
    ]
  }

  compose(args: string[], timeoutMs = 300_000): Promise<string> {
    return runOk('docker', [...this.composeArgs, ...args], { env: this.env, cwd: ROOT, timeoutMs })
  }

  docker(args: string[], timeoutMs = 120_000): Promise<string> {
    return runOk('docker', args, { env: this.env, cwd: ROOT, timeoutMs })
  }

  /** `up -d` with the replica counts of docker-compose.yml, from images already built. */
  async up(): Promise<void> {
    await this.compose(['up', '-d', '--no-build', ...scaleArgs()], 600_000)
  }

  /**
   * The project's containers, stopped ones included, as `compose ps` lists them — found by the
   * labels compose puts on them, with the Go CLI: the Python compose CLI costs a second of CPU per
   * call, and waitHealthy polls this every second while the stack under test starts on two cores.
   */
  async containers(service?: string): Promise<ContainerState[]> {
    const filters = [
      `label=com.docker.compose.project=${this.project}`,
      'label=com.docker.compose.oneoff=False',
      ...(service ? [`label=com.docker.compose.service=${service}`] : []),
    ]
    const ids = (
      await this.docker(['ps', '-a', '-q', '--no-trunc', ...filters.flatMap((f) => ['--filter', f])])
    )
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
    if (ids.length === 0) return []
    // Raw JSON: the newer CLI's --format refuses a missing State.Health (services without a check).
    const inspected = JSON.parse(await this.docker(['inspect', ...ids])) as Array<{
      Id: string
      Name: string
      Config: { Labels: Record<string, string> }
      State: { Status: string; ExitCode: number; Health?: { Status: string } }
    }>
    return inspected
      .map((c) => ({
        id: c.Id,
        name: c.Name.replace(/^\//, ''),
        service: c.Config.Labels['com.docker.compose.service'] ?? '',
        status: c.State.Status,
        health: c.State.Health?.Status ?? '',
        exitCode: c.State.ExitCode,
      }))
      .sort((a, b) => a.name.localeCompare(b.name))
  }

  /** The container's name for the n-th replica of a service (compose v1 names them project_service_n). */
  async container(service: string, n = 1): Promise<string> {
    const all = await this.containers(service)
    const c = all.find((x) => x.name.endsWith(`_${n}`)) ?? all[n - 1]
    if (!c) throw new Error(`no container ${n} for ${service}`)
    return c.name
  }

  /** Waits for every long-running container to be running and healthy, and migrate to have exited 0. */
  async waitHealthy(timeoutMs = 180_000): Promise<ContainerState[]> {
    return until(
      'every service healthy',
      async () => {
        const all = await this.containers()
        const bad = all.filter((c) =>
          c.service === 'migrate'
            ? c.status !== 'exited' || c.exitCode !== 0
            : c.status !== 'running' || (c.health !== '' && c.health !== 'healthy'),
        )
        if (bad.length === 0 && all.length > 0) return all
        throw new Error(bad.map((c) => `${c.name} ${c.status} ${c.health} ${c.exitCode}`).join(', '))
      },
      timeoutMs,
      1000,
    )
  }

  /**
   * A command in the first container of a service: `docker compose exec -T` (as docs/deployment.md
   * shows), or `docker exec` on compose v1's container name for the suite's frequent polls (the
   * Python compose CLI costs a second of CPU per call, which the brokers under test need).
   */
  async exec(
    service: string,
    cmd: string[],
    opts: { input?: string; viaCompose?: boolean } = {},
  ): Promise<string> {
    const args = opts.viaCompose
      ? [...this.composeArgs, 'exec', '-T', service, ...cmd]
      : ['exec', '-i', `${this.project}_${service}_1`, ...cmd]
    return runOk('docker', args, { env: this.env, cwd: ROOT, input: opts.input ?? '', timeoutMs: 120_000 })
  }

  /** psql as the compose file's database user; stdin is the whole script. */
  async psql(script: string, service = 'postgres', viaCompose = false): Promise<string[][]> {
    const out = await this.exec(
      service,
      ['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-U', 'sabt', '-d', 'sabt', '-At', '-F', '\t'],
      { input: script, viaCompose },
    )
    return out
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => l.split('\t'))
  }

  /** rabbitmqctl on a node, JSON output parsed. */
  async rabbitmqctl<T>(service: string, args: string[], viaCompose = false): Promise<T> {
    const out = await this.exec(service, ['rabbitmqctl', '-q', '--formatter', 'json', ...args], {
      viaCompose,
    })
    return JSON.parse(out) as T
  }

  async logs(service: string, tail = 40): Promise<string> {
    const r = await run(
      'docker',
      [...this.composeArgs, 'logs', '--no-color', '--tail', String(tail), service],
      {
        env: this.env,
        cwd: ROOT,
      },
    )
    return r.out + r.err
  }

  /** `down`; with volumes: true also the volumes (the end of a test file). */
  async down(opts: { volumes: boolean }): Promise<void> {
    await this.compose(['down', '--remove-orphans', ...(opts.volumes ? ['-v'] : [])], 300_000)
  }
}

/**
 * A test CA and the edge's certificate for 127.0.0.1 and localhost (openssl, one day), in `dir`:
 * edge.pem (certificate then key, as HAProxy reads it) and ca.crt. Never committed: made per run.
 */
function makeTestCertificate(dir: string): Buffer {
  mkdirSync(dir, { recursive: true })
  const ossl = (args: string[]) =>
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
  ossl([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '1',
    '-subj',
    '/CN=sabt-e2e-ca',
  ])
  ossl([
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'edge.key',
    '-out',
    'edge.csr',
    '-subj',
    '/CN=127.0.0.1',
  ])
  writeFileSync(join(dir, 'ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
  ossl([
    'x509',
    '-req',
    '-in',
    'edge.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'edge.crt',
    '-days',
    '1',
    '-extfile',
    'ext',
  ])
  writeFileSync(
    join(dir, 'edge.pem'),
    Buffer.concat([readFileSync(join(dir, 'edge.crt')), readFileSync(join(dir, 'edge.key'))]),
  )
  // Read by the edge container's user; a test key, good for one day, for 127.0.0.1 only.
  chmodSync(dir, 0o755)
  chmodSync(join(dir, 'edge.pem'), 0o644)
  return readFileSync(join(dir, 'ca.crt'))
}
