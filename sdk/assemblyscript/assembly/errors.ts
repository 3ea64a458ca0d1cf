// Host call failures (SPEC §5.2, §5.3, §7.6).

/** Error codes a host call can fail with, plus the SDK's own. */
export namespace Code {
  /** The install was not granted the capability. */
  export const CapabilityDenied = "capability_denied";
  /** http.fetch to a host outside the allowlists, or to a private address. */
  export const EgressDenied = "egress_denied";
  /** http.fetch with a URL that does not parse. */
  export const InvalidURL = "invalid_url";
  /** The fetch ran out of time. */
  export const Timeout = "timeout";
  /** Connection or protocol failure during a fetch. */
  export const Transport = "transport";
  /** The fetched response exceeded the body cap. */
  export const TooLarge = "too_large";
  /** No such KV record or secret. */
  export const NotFound = "not_found";
  /** A conditional KV write lost the race. */
  export const RevisionMismatch = "revision_mismatch";
  /** The install's KV record or byte quota is full. */
  export const QuotaExceeded = "quota_exceeded";
  /** The host rejected the request's fields. */
  export const ValidationFailed = "validation_failed";
  /** The runner's per-invocation host call cap was hit. */
  export const HostCallLimit = "host_call_limit";
  /** (SDK) The host's reply was missing or not the expected JSON. */
  export const InvalidHostReply = "invalid_host_reply";
}

/** A failed host call: the host returned 1 with {"error":{"code","message"}}. */
export class HostError {
  constructor(
    /** The host function that failed, e.g. "http.fetch". */
    public importName: string,
    /** The machine-readable code (see Code). */
    public code: string,
    /** The host's human-readable explanation. */
    public message: string,
  ) {}

  toString(): string {
    return this.message.length == 0
      ? this.importName + ": " + this.code
      : this.importName + ": " + this.code + ": " + this.message;
  }
}

/** A host call's outcome: value on success, error otherwise. */
export class Result<T> {
  constructor(public value: T | null, public error: HostError | null) {}

  get ok(): bool { return this.error == null; }

  /** The value; traps (with the error logged) when the call failed. */
  unwrap(): T {
    const e = this.error;
    if (e != null) throw new Error(e.toString());
    return this.value!;
  }

  /** Whether the call failed with code. */
  is(code: string): bool {
    const e = this.error;
    return e != null && e.code == code;
  }
}
