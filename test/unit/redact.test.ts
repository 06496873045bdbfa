import { describe, expect, it } from 'vitest';
import { maskUrlCredentials, redactText, sanitizeForLog } from '../../src/redact.js';

describe('redactText', () => {
  it('replaces each kind of secret and keeps what identifies the call', () => {
    const cases: [string, string][] = [
      ['PATCH https://discord.com/api/v10/webhooks/1234567890/aW50ZXJhY3Rpb246MTIz.abc-DEF_ghi/messages/@original', 'PATCH https://discord.com/api/v10/webhooks/1234567890/[redacted]/messages/@original'],
      ['POST /api/v10/interactions/998877/aW50ZXJhY3Rpb24-token/callback', 'POST /api/v10/interactions/998877/[redacted]/callback'],
      ['https://hooks.slack.com/actions/T0ABC123/5566778899/Zx9yW8vU7tS6', 'https://hooks.slack.com/actions/T0ABC123/5566778899/[redacted]'],
      ['https://hooks.slack.com/services/T0ABC123/B0DEF456/abcdefghijklmnop', 'https://hooks.slack.com/services/T0ABC123/B0DEF456/[redacted]'],
      ['token xoxb-1234567890-0987654321-AbCdEfGh was revoked', 'token xoxb-[redacted] was revoked'],
      ['app token xapp-1-A0123-4567-abcdef', 'app token xapp-[redacted]'],
      ['Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123', 'Authorization: Bearer [redacted]'],
      ['Authorization: Bot MTIzNDU2Nzg5MDEyMzQ1Njc4.GabcDE.abcdefghijklmnopqrstuvwxyz0123', 'Authorization: Bot [redacted]'],
      ['token MTIzNDU2Nzg5MDEyMzQ1Njc4.GabcDE.abcdefghijklmnopqrstuvwxyz0123 is bad', 'token [redacted] is bad'],
      ['connect to redis://default:hunter2@10.0.0.5:6379/0 failed', 'connect to redis://[redacted]@10.0.0.5:6379/0 failed'],
      ['HF_TOKEN hf_abcdefghijklmnopqrstuvwx', 'HF_TOKEN hf_[redacted]'],
    ];
    for (const [text, expected] of cases) expect(redactText(text)).toBe(expected);
  });

  it('leaves ordinary text alone', () => {
    for (const text of [
      'the model folder models/sdxl-lightning/unet_4step/model.onnx is missing',
      'Basic Information → Signing Secret',
      'libonnxruntime_providers_cuda.so not found',
      'https://discord.com/api/v10/channels/123/messages',
      'Bot User OAuth Token (xoxb-…)',
    ]) {
      expect(redactText(text)).toBe(text);
    }
  });

  it('replaces the configured secrets wherever they are, longest first', () => {
    expect(redactText('a=abcd1234 b=abcd1234efgh', ['abcd1234', 'abcd1234efgh'])).toBe('a=[redacted] b=[redacted]');
    expect(redactText('short xyz', ['xyz'])).toBe('short xyz');
  });
});

describe('maskUrlCredentials', () => {
  it('masks the userinfo of a URL, with or without a scheme, and nothing else', () => {
    expect(maskUrlCredentials('https://user:pass@host:1/p')).toBe('https://[redacted]@host:1/p');
    expect(maskUrlCredentials('//pass@host')).toBe('//[redacted]@host');
    expect(maskUrlCredentials(':p@ss@host:6379')).toBe('[redacted]@host:6379');
    expect(maskUrlCredentials('localhost:6379')).toBe('localhost:6379');
    expect(maskUrlCredentials('http://host/path@v2')).toBe('http://host/path@v2');
  });
});

describe('sanitizeForLog', () => {
  it('keeps numbers, short arrays and nested records; cuts long strings and lists', () => {
    const long = 'x'.repeat(5000);
    const result = sanitizeForLog({ n: 1, ok: true, none: null, list: [1, 2, 3], big: 10n, nested: { deep: { deeper: 'yes' } }, long, many: Array.from({ length: 60 }, (_, i) => `item${i}`) }) as Record<string, unknown>;
    expect(result).toMatchObject({ n: 1, ok: true, none: null, list: [1, 2, 3], big: '10', nested: { deep: { deeper: 'yes' } } });
    expect(result.long).toMatch(/^x{4000}… \(5000 characters\)$/);
    expect(result.many).toHaveLength(51);
    expect((result.many as string[])[50]).toBe('… 10 more');
  });

  it('never throws, even on a getter that does', () => {
    const hostile = Object.defineProperty({}, 'boom', {
      enumerable: true,
      get() {
        throw new Error('no xoxb-1-2-3');
      },
    });
    expect(sanitizeForLog(hostile)).toBe('[could not be logged: no xoxb-[redacted]]');
  });
});
