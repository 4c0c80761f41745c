import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The repository: compose files and their relative paths are read from here. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
