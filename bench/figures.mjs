// How the benchmarks sum up and print their figures.

/** A number as the figures print it: thousands separated, `digits` decimals. */
export const fmt = (x, digits = 0) => x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

/** The middle value of `xs` (of an even count, the upper of the two). */
export const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
