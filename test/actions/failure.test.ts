import { describe, expect, it } from 'vitest';
import { classifyFailure } from '../../shared/actions/failure';
import { ApiError, parseRetryAfter } from '../../shared/clients/apiError';

describe('classifyFailure', () => {
  it.each([
    [new ApiError('graph', 429, 'TooManyRequests', 'slow down', 7000), { class: 'transient', retryAfterMs: 7000, status: 429 }],
    [new ApiError('graph', 429, undefined, 'ID Protection sends no Retry-After'), { class: 'transient', status: 429 }],
    [new ApiError('defender', 503, 'ServiceUnavailable', 'down'), { class: 'transient', status: 503 }],
    [new ApiError('arm', 0, undefined, 'ECONNRESET'), { class: 'transient', status: 0 }],
    [new ApiError('graph', 408, undefined, 'timeout'), { class: 'transient' }],
    [new ApiError('graph', 400, 'ActiveDurationTooShort', 'too soon'), { class: 'transient', retryAfterMs: 300_000, code: 'ActiveDurationTooShort' }],
    [
      new ApiError('graph', 403, 'Authorization_RequestDenied', 'Insufficient privileges'),
      { class: 'blocked', status: 403, code: 'Authorization_RequestDenied' },
    ],
    [new ApiError('graph', 404, 'Request_ResourceNotFound', 'no such user'), { class: 'permanent', status: 404 }],
    [new ApiError('defender', 400, 'InvalidRequestBody', 'bad'), { class: 'permanent' }],
    [new TypeError('fetch failed'), { class: 'transient', detail: 'no answer: fetch failed' }],
  ])('%s', (error, expected) => {
    expect(classifyFailure(error)).toMatchObject(expected);
  });

  it('keeps what the API said for the record', () => {
    expect(classifyFailure(new ApiError('graph', 403, 'Authorization_RequestDenied', 'Insufficient privileges')).detail).toBe(
      'graph 403 Authorization_RequestDenied: Insufficient privileges',
    );
  });

  it('reads Retry-After as seconds or a date', () => {
    expect(parseRetryAfter('12')).toBe(12_000);
    expect(parseRetryAfter('Sat, 28 Nov 2026 10:00:30 GMT', Date.parse('2026-11-28T10:00:00Z'))).toBe(30_000);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });
});
