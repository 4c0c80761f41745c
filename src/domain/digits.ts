/** Persian (۰-۹, U+06F0) and Arabic-Indic (٠-٩, U+0660) digits to ASCII. */
export function toAsciiDigits(input: string): string {
  // Fast path: most submissions are already ASCII.
  if (!/[\u0660-\u0669\u06F0-\u06F9]/.test(input)) return input
  let out = ''
  for (const ch of input) {
    const code = ch.charCodeAt(0)
    if (code >= 0x06f0 && code <= 0x06f9) out += String.fromCharCode(code - 0x06f0 + 48)
    else if (code >= 0x0660 && code <= 0x0669) out += String.fromCharCode(code - 0x0660 + 48)
    else out += ch
  }
  return out
}

/** Arabic yeh (ي, and alef maksura ى) and kaf (ك) to their Persian forms (ی, ک). */
export function toPersianLetters(input: string): string {
  if (!/[\u064A\u0643\u0649]/.test(input)) return input
  return input.replace(/[\u064A\u0649]/g, '\u06CC').replace(/\u0643/g, '\u06A9')
}
