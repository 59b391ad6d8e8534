import type { Decider, DomainEvent } from './types.js';

function strip(e: DomainEvent): DomainEvent {
  return { type: e.type, data: e.data };
}

/**
 * Given/when/then for deciders, with no store: `spec(decider).given([...]).when(cmd).then([...])`
 * or `.thenThrows(code or predicate)`. The assertions throw plain Errors, so any test runner works.
 */
export function deciderSpec<C, S, E extends DomainEvent>(decider: Decider<C, S, E>) {
  return {
    given(events: E[] = []) {
      return {
        when(command: C) {
          const run = async () =>
            decider.decide(command, events.reduce(decider.evolve, decider.initialState()));
          return {
            /** The command causes exactly these events (type and data). */
            // biome-ignore lint/suspicious/noThenProperty: `.then(events)` is the given/when/then vocabulary the issue asks for; `when()` is never awaited on its own.
            async then(expected: E[]): Promise<void> {
              const out = await run();
              const got = JSON.stringify((Array.isArray(out) ? out : [out]).map(strip));
              const want = JSON.stringify(expected.map(strip));
              if (got !== want) throw new Error(`expected events ${want}\n     but got ${got}`);
            },
            /** The command is refused: with this error code, or an error the predicate accepts. */
            async thenThrows(expected?: string | ((err: unknown) => boolean)): Promise<void> {
              let out: unknown;
              try {
                out = await run();
              } catch (err) {
                const code = (err as { code?: string }).code;
                if (expected === undefined) return;
                if (typeof expected === 'string' ? code === expected : expected(err)) return;
                throw new Error(`the command threw ${code ?? String(err)}, not the expected error`);
              }
              throw new Error(`expected the command to be refused, but it decided ${JSON.stringify(out)}`);
            },
          };
        },
      };
    },
  };
}

/** Shorthand: `given(decider, events).when(command)`. */
export function given<C, S, E extends DomainEvent>(decider: Decider<C, S, E>, events: E[] = []) {
  return deciderSpec(decider).given(events);
}
