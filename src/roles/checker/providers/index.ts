/**
 * The check providers: definitions in configuration (config/sabt.yaml `providers:`, compiled
 * once at start by src/config/providers.ts — the built-in identity, mobile and eligibility among
 * them), or provider modules for what a definition cannot say. This folder holds what a call
 * needs beyond that: authentication (auth.ts).
 */
export type {
  Answer,
  CheckSubject,
  CompiledProvider as Provider,
  PersonalField,
  ProviderModule,
} from '../../../config/providers.js'
