/** An error the user can act on: printed as one line, then exit with `exitCode`. */
export class UsageError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 2) {
    super(message);
    this.name = 'UsageError';
    this.exitCode = exitCode;
  }
}

/** The kernel or the privileges cannot support tracing. */
export class EnvironmentError extends UsageError {
  constructor(message: string) {
    super(message, 2);
    this.name = 'EnvironmentError';
  }
}
