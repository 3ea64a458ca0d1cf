// A compact JSON value, parser and encoder: the guest ABI speaks JSON
// (SPEC §5.1, §5.2) and AssemblyScript has no JSON in its standard library.
// Objects keep their keys in insertion order, so encoded output is stable.

/** The kind of a JSONValue. */
export enum Kind { Null, Bool, Number, String, Array, Object }

/** One JSON value of any kind. Build values with the static constructors. */
export class JSONValue {
  kind: Kind = Kind.Null;
  boolValue: bool = false;
  numberValue: f64 = 0;
  stringValue: string = "";
  items: JSONValue[] = [];
  keys: string[] = [];
  private fields: Map<string, JSONValue> | null = null;

  static ofNull(): JSONValue { return new JSONValue(); }
  static ofBool(b: bool): JSONValue { const v = new JSONValue(); v.kind = Kind.Bool; v.boolValue = b; return v; }
  static ofNumber(n: f64): JSONValue { const v = new JSONValue(); v.kind = Kind.Number; v.numberValue = n; return v; }
  static ofString(s: string): JSONValue { const v = new JSONValue(); v.kind = Kind.String; v.stringValue = s; return v; }
  static newArray(): JSONValue { const v = new JSONValue(); v.kind = Kind.Array; return v; }
  static newObject(): JSONValue {
    const v = new JSONValue();
    v.kind = Kind.Object;
    v.fields = new Map<string, JSONValue>();
    return v;
  }
  /** An object of string values, in the map's order. */
  static ofStringMap(m: Map<string, string>): JSONValue {
    const o = JSONValue.newObject();
    const ks = m.keys();
    for (let i = 0; i < ks.length; i++) o.setString(ks[i], m.get(ks[i]));
    return o;
  }

  get isNull(): bool { return this.kind == Kind.Null; }
  get isObject(): bool { return this.kind == Kind.Object; }
  get isArray(): bool { return this.kind == Kind.Array; }
  get isString(): bool { return this.kind == Kind.String; }
  get isNumber(): bool { return this.kind == Kind.Number; }
  get isBool(): bool { return this.kind == Kind.Bool; }

  /** Whether the object has key. */
  has(key: string): bool {
    const f = this.fields;
    return f != null && f.has(key);
  }
  /** The member key of an object, or null. */
  get(key: string): JSONValue | null {
    const f = this.fields;
    if (f == null || !f.has(key)) return null;
    return f.get(key);
  }
  /** The string member key, or def when missing or not a string. */
  getString(key: string, def: string = ""): string {
    const v = this.get(key);
    return v != null && v.kind == Kind.String ? v.stringValue : def;
  }
  /** The number member key, or def when missing or not a number. */
  getNumber(key: string, def: f64 = 0): f64 {
    const v = this.get(key);
    return v != null && v.kind == Kind.Number ? v.numberValue : def;
  }
  /** The boolean member key, or def when missing or not a boolean. */
  getBool(key: string, def: bool = false): bool {
    const v = this.get(key);
    return v != null && v.kind == Kind.Bool ? v.boolValue : def;
  }
  /** An object member of string values as a map (other values are skipped). */
  getStringMap(key: string): Map<string, string> {
    const out = new Map<string, string>();
    const v = this.get(key);
    if (v == null || v.kind != Kind.Object) return out;
    for (let i = 0; i < v.keys.length; i++) {
      const m = v.get(v.keys[i]);
      if (m != null && m.kind == Kind.String) out.set(v.keys[i], m.stringValue);
    }
    return out;
  }

  /** Sets member key of an object (replacing an earlier one); returns this. */
  set(key: string, value: JSONValue): JSONValue {
    let f = this.fields;
    if (f == null) {
      // Setting a member turns any value into an object.
      this.kind = Kind.Object;
      f = new Map<string, JSONValue>();
      this.fields = f;
    }
    if (!f.has(key)) this.keys.push(key);
    f.set(key, value);
    return this;
  }
  setString(key: string, s: string): JSONValue { return this.set(key, JSONValue.ofString(s)); }
  setNumber(key: string, n: f64): JSONValue { return this.set(key, JSONValue.ofNumber(n)); }
  setBool(key: string, b: bool): JSONValue { return this.set(key, JSONValue.ofBool(b)); }
  /** Appends to an array; returns this. */
  push(value: JSONValue): JSONValue {
    this.kind = Kind.Array;
    this.items.push(value);
    return this;
  }

  /** The value encoded as JSON. */
  toString(): string {
    const parts = new Array<string>();
    encodeValue(this, parts);
    return parts.join("");
  }
}

/** Encodes s as a JSON string literal, quotes included. */
export function quote(s: string): string {
  const parts = new Array<string>();
  encodeString(s, parts);
  return parts.join("");
}

/** Encodes n as JSON: integers without a fraction, NaN and ±Infinity as null. */
export function formatNumber(n: f64): string {
  if (!isFinite(n)) return "null";
  if (n == Math.floor(n) && Math.abs(n) < 9007199254740992.0) return (<i64>n).toString();
  return n.toString();
}

function encodeValue(v: JSONValue, out: string[]): void {
  switch (v.kind) {
    case Kind.Null: out.push("null"); break;
    case Kind.Bool: out.push(v.boolValue ? "true" : "false"); break;
    case Kind.Number: out.push(formatNumber(v.numberValue)); break;
    case Kind.String: encodeString(v.stringValue, out); break;
    case Kind.Array: {
      out.push("[");
      for (let i = 0; i < v.items.length; i++) {
        if (i > 0) out.push(",");
        encodeValue(v.items[i], out);
      }
      out.push("]");
      break;
    }
    default: {
      out.push("{");
      for (let i = 0; i < v.keys.length; i++) {
        if (i > 0) out.push(",");
        encodeString(v.keys[i], out);
        out.push(":");
        encodeValue(v.get(v.keys[i])!, out);
      }
      out.push("}");
    }
  }
}

const HEX = "0123456789abcdef";

function encodeString(s: string, out: string[]): void {
  out.push("\"");
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c != 0x22 && c != 0x5c) continue;
    if (i > start) out.push(s.substring(start, i));
    start = i + 1;
    if (c == 0x22) out.push("\\\"");
    else if (c == 0x5c) out.push("\\\\");
    else if (c == 0x0a) out.push("\\n");
    else if (c == 0x0d) out.push("\\r");
    else if (c == 0x09) out.push("\\t");
    else out.push("\\u00" + HEX.charAt(c >> 4) + HEX.charAt(c & 15));
  }
  if (start < s.length) out.push(s.substring(start));
  out.push("\"");
}

/** Parses JSON text; null when it is not valid JSON. */
export function parse(text: string): JSONValue | null {
  const p = new Parser(text);
  p.skipSpace();
  const v = p.value(0);
  if (v == null || p.failed) return null;
  p.skipSpace();
  return p.pos == text.length ? v : null;
}

/** Parses UTF-8 JSON bytes; null when they are not valid JSON. */
export function parseBytes(bytes: Uint8Array): JSONValue | null {
  return parse(String.UTF8.decodeUnsafe(bytes.dataStart, bytes.length));
}

// maxDepth bounds nesting so hostile input cannot exhaust the wasm stack.
const maxDepth = 128;

class Parser {
  pos: i32 = 0;
  failed: bool = false;
  constructor(public s: string) {}

  skipSpace(): void {
    while (this.pos < this.s.length) {
      const c = this.s.charCodeAt(this.pos);
      if (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09) break;
      this.pos++;
    }
  }

  fail(): JSONValue | null { this.failed = true; return null; }

  literal(word: string, v: JSONValue): JSONValue | null {
    if (this.s.substr(this.pos, word.length) != word) return this.fail();
    this.pos += word.length;
    return v;
  }

  value(depth: i32): JSONValue | null {
    if (depth > maxDepth || this.pos >= this.s.length) return this.fail();
    const c = this.s.charCodeAt(this.pos);
    if (c == 0x7b) return this.object(depth);
    if (c == 0x5b) return this.array(depth);
    if (c == 0x22) {
      const str = this.string();
      return str == null ? null : JSONValue.ofString(str);
    }
    if (c == 0x74) return this.literal("true", JSONValue.ofBool(true));
    if (c == 0x66) return this.literal("false", JSONValue.ofBool(false));
    if (c == 0x6e) return this.literal("null", JSONValue.ofNull());
    return this.number();
  }

  object(depth: i32): JSONValue | null {
    const o = JSONValue.newObject();
    this.pos++;
    this.skipSpace();
    if (this.pos < this.s.length && this.s.charCodeAt(this.pos) == 0x7d) { this.pos++; return o; }
    while (true) {
      this.skipSpace();
      if (this.pos >= this.s.length || this.s.charCodeAt(this.pos) != 0x22) return this.fail();
      const key = this.string();
      if (key == null) return null;
      this.skipSpace();
      if (this.pos >= this.s.length || this.s.charCodeAt(this.pos) != 0x3a) return this.fail();
      this.pos++;
      this.skipSpace();
      const v = this.value(depth + 1);
      if (v == null) return null;
      o.set(key, v);
      this.skipSpace();
      if (this.pos >= this.s.length) return this.fail();
      const c = this.s.charCodeAt(this.pos++);
      if (c == 0x7d) return o;
      if (c != 0x2c) return this.fail();
    }
  }

  array(depth: i32): JSONValue | null {
    const a = JSONValue.newArray();
    this.pos++;
    this.skipSpace();
    if (this.pos < this.s.length && this.s.charCodeAt(this.pos) == 0x5d) { this.pos++; return a; }
    while (true) {
      this.skipSpace();
      const v = this.value(depth + 1);
      if (v == null) return null;
      a.items.push(v);
      this.skipSpace();
      if (this.pos >= this.s.length) return this.fail();
      const c = this.s.charCodeAt(this.pos++);
      if (c == 0x5d) return a;
      if (c != 0x2c) return this.fail();
    }
  }

  string(): string | null {
    const s = this.s;
    let i = this.pos + 1;
    let start = i;
    let parts: string[] | null = null;
    while (i < s.length) {
      const c = s.charCodeAt(i);
      if (c == 0x22) {
        let out = s.substring(start, i);
        if (parts != null) { parts.push(out); out = parts.join(""); }
        this.pos = i + 1;
        return out;
      }
      if (c < 0x20) break;
      if (c != 0x5c) { i++; continue; }
      if (parts == null) parts = new Array<string>();
      parts.push(s.substring(start, i));
      if (i + 1 >= s.length) break;
      const e = s.charCodeAt(i + 1);
      i += 2;
      if (e == 0x22) parts.push("\"");
      else if (e == 0x5c) parts.push("\\");
      else if (e == 0x2f) parts.push("/");
      else if (e == 0x62) parts.push("\b");
      else if (e == 0x66) parts.push("\f");
      else if (e == 0x6e) parts.push("\n");
      else if (e == 0x72) parts.push("\r");
      else if (e == 0x74) parts.push("\t");
      else if (e == 0x75) {
        if (i + 4 > s.length) break;
        let code: i32 = 0;
        for (let k = 0; k < 4; k++) {
          const h = hexValue(s.charCodeAt(i + k));
          if (h < 0) { this.failed = true; return null; }
          code = (code << 4) | h;
        }
        i += 4;
        parts.push(String.fromCharCode(code));
      } else break;
      start = i;
    }
    this.failed = true;
    return null;
  }

  number(): JSONValue | null {
    const s = this.s;
    const start = this.pos;
    let i = start;
    if (i < s.length && s.charCodeAt(i) == 0x2d) i++;
    const digits = i;
    while (i < s.length && isDigit(s.charCodeAt(i))) i++;
    if (i == digits) return this.fail();
    if (i - digits > 1 && s.charCodeAt(digits) == 0x30) return this.fail(); // no leading zeros
    if (i < s.length && s.charCodeAt(i) == 0x2e) {
      i++;
      const frac = i;
      while (i < s.length && isDigit(s.charCodeAt(i))) i++;
      if (i == frac) return this.fail();
    }
    if (i < s.length && (s.charCodeAt(i) | 0x20) == 0x65) {
      i++;
      if (i < s.length && (s.charCodeAt(i) == 0x2b || s.charCodeAt(i) == 0x2d)) i++;
      const exp = i;
      while (i < s.length && isDigit(s.charCodeAt(i))) i++;
      if (i == exp) return this.fail();
    }
    this.pos = i;
    return JSONValue.ofNumber(parseFloat(s.substring(start, i)));
  }
}

function isDigit(c: i32): bool { return c >= 0x30 && c <= 0x39; }

function hexValue(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  c |= 0x20;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}
