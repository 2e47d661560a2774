// Exact decimal arithmetic on the API's decimal strings, with BigInt.
//
// Money never goes through floating point here: 0.1 + 0.2 is 0.3, and the
// order form's checks (tick, lot, minimum value) give the same answer as the
// server's Decimal arithmetic.  A value is {n: BigInt, s: scale}: n / 10^s.

const PATTERN = /^\s*([+-])?(\d*)(?:\.(\d*))?\s*$/;

/** Parse "12.50" into a decimal, or return null for anything that is not a plain decimal number. */
export function parse(text) {
  if (typeof text !== "string") text = text == null ? "" : String(text);
  const match = PATTERN.exec(text);
  if (!match || (match[2] === "" && (match[3] === undefined || match[3] === ""))) return null;
  const fraction = match[3] || "";
  const n = BigInt((match[2] || "0") + fraction);
  return { n: match[1] === "-" ? -n : n, s: fraction.length };
}

const TEN = 10n;

function scaleUp(value, scale) {
  return value.n * TEN ** BigInt(scale - value.s);
}

function align(a, b) {
  const s = Math.max(a.s, b.s);
  return [scaleUp(a, s), scaleUp(b, s), s];
}

export function add(a, b) {
  const [x, y, s] = align(a, b);
  return { n: x + y, s };
}

export function sub(a, b) {
  const [x, y, s] = align(a, b);
  return { n: x - y, s };
}

export function mul(a, b) {
  return { n: a.n * b.n, s: a.s + b.s };
}

/** -1, 0 or 1. */
export function cmp(a, b) {
  const [x, y] = align(a, b);
  return x < y ? -1 : x > y ? 1 : 0;
}

export function isZero(a) {
  return a.n === 0n;
}

/** True when a is a whole number of steps (the tick or the lot). */
export function isMultiple(a, step) {
  const [x, y] = align(a, step);
  return y !== 0n && x % y === 0n;
}

/** How many decimals a really has (trailing zeros do not count). */
export function places(a) {
  let { n, s } = a;
  while (s > 0 && n % TEN === 0n) {
    n /= TEN;
    s -= 1;
  }
  return s;
}

/** Rounded toward zero to `digits` decimals, as fees are (nobody pays more than the rate). */
export function truncate(a, digits) {
  if (a.s <= digits) return a;
  return { n: a.n / TEN ** BigInt(a.s - digits), s: digits };
}

/** Plain string without trailing zeros, as the API writes amounts: "1.5", "100", "0". */
export function format(a) {
  const negative = a.n < 0n;
  let digits = (negative ? -a.n : a.n).toString();
  if (a.s > 0) {
    digits = digits.padStart(a.s + 1, "0");
    let text = digits.slice(0, -a.s) + "." + digits.slice(-a.s);
    text = text.replace(/0+$/, "").replace(/\.$/, "");
    digits = text;
  }
  return (negative && digits !== "0" ? "-" : "") + digits;
}

/** Normalised text of a decimal string ("100.10" -> "100.1"), for use as a map key. */
export function normalise(text) {
  const value = parse(text);
  return value ? format(value) : text;
}
