import { describe, expect, it } from 'vitest';
import { urlProblem } from '../../alerts/webhooks.js';

/**
 * Webhook URLs naming a non-public address are refused at registration (finding 2 of issue 9):
 * IPv4-mapped IPv6 forms (the URL parser rewrites `[::ffff:127.0.0.1]` to `[::ffff:7f00:1]`)
 * and every special-purpose range of the IANA registries, not only RFC 1918 and loopback.
 * Literal addresses only: no DNS is asked.
 */
const refused = [
  'http://[::ffff:127.0.0.1]/',
  'http://[::ffff:169.254.169.254]/latest/meta-data',
  'http://[::ffff:7f00:1]/',
  'http://[::ffff:10.0.0.1]/',
  'http://[fec0::1]/', // deprecated site-local
  'http://[64:ff9b::7f00:1]/', // NAT64 of 127.0.0.1
  'http://[64:ff9b:1::a00:1]/', // local-use NAT64
  'http://198.18.0.1/', // benchmarking
  'http://198.19.255.254/',
  'http://192.0.2.10/', // documentation
  'http://203.0.113.5/',
  'http://240.0.0.1/', // reserved
  'http://255.255.255.255/',
  'http://100.64.0.1/', // carrier-grade NAT
  'http://0.0.0.0/',
  'http://127.0.0.1/',
  'http://2130706433/', // 127.0.0.1 as one number
  'http://0x7f.1/',
  'http://10.1.2.3/',
  'http://172.16.0.1/',
  'http://192.168.1.1/',
  'http://169.254.169.254/',
  'http://[::1]/',
  'http://[::]/',
  'http://[fe80::1]/',
  'http://[fc00::1]/',
  'http://[fd12:3456::1]/',
  'http://[2001:db8::1]/', // documentation
  'http://[2002:7f00:1::1]/', // 6to4 of 127.0.0.1
  'http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/', // Teredo
  'http://[ff02::1]/',
  'http://[::ffff:0:7f00:1]/', // SIIT (RFC 6145)
];

describe('webhook URL: non-public literal addresses are refused at registration', () => {
  it.each(refused)('%s', async (url) => {
    expect(await urlProblem(url, false)).toMatch(/non-public address/);
  });

  it('accepts public literal addresses', async () => {
    for (const url of ['https://8.8.8.8/hook', 'http://[2606:4700:4700::1111]/hook', 'https://1.1.1.1:8443/x']) {
      expect(await urlProblem(url, false), url).toBeNull();
    }
  });

  it('WEBHOOK_ALLOW_PRIVATE keeps allowing them', async () => {
    expect(await urlProblem('http://[::ffff:127.0.0.1]/', true)).toBeNull();
    expect(await urlProblem('http://127.0.0.1:9/', true)).toBeNull();
  });
});
