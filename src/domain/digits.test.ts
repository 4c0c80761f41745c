import { describe, expect, it } from 'vitest'
import { toAsciiDigits, toPersianLetters } from './digits.js'

describe('digit and letter normalisation', () => {
  it('turns Persian and Arabic-Indic digits into ASCII, leaving everything else', () => {
    expect(toAsciiDigits('۰۱۲۳۴۵۶۷۸۹')).toBe('0123456789')
    expect(toAsciiDigits('٠١٢٣٤٥٦٧٨٩')).toBe('0123456789')
    expect(toAsciiDigits('تاریخ ۱۳۶۹-۰۱-۰۱ abc 42')).toBe('تاریخ 1369-01-01 abc 42')
    expect(toAsciiDigits('plain')).toBe('plain')
  })

  it('turns Arabic yeh and kaf into their Persian forms', () => {
    expect(toPersianLetters('علي')).toBe('علی')
    expect(toPersianLetters('كريم')).toBe('کریم')
    expect(toPersianLetters('مصطفى')).toBe('مصطفی')
    expect(toPersianLetters('کریمی')).toBe('کریمی')
  })
})
