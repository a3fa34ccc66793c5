import { describe, expect, it } from 'vitest';
import { parseEventLine } from './virsh-monitor.js';

describe('parseEventLine (virsh qemu-monitor-event --timestamp)', () => {
  it("reads the event, its data and QEMU's timestamp", () => {
    expect(
      parseEventLine(
        `2026-12-06 23:11:37.680+0000: event MIGRATION for domain 'default_vm-a': {"status":"active"}`,
      ),
    ).toEqual({
      event: 'MIGRATION',
      data: { status: 'active' },
      timestampMs: Date.parse('2026-12-06T23:11:37.680Z'),
    });
  });

  it('reads an event without data and a timestamp with an offset', () => {
    expect(parseEventLine(`2026-12-06 23:11:37.701+0100: event STOP for domain 'ns_vm': <null>`)).toEqual({
      event: 'STOP',
      data: {},
      timestampMs: Date.parse('2026-12-06T22:11:37.701Z'),
    });
  });

  it.each([
    'event loop',
    '',
    `2026-12-06 23:11:37.680+0000: event MIGRATION for domain 'x': {"status":`,
    `garbage: event STOP for domain 'x': <null>`,
  ])('ignores a line that is no event: %j', (line) => {
    expect(parseEventLine(line)).toBeUndefined();
  });
});
