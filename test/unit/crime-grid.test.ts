import proj4 from 'proj4';
import { describe, expect, it } from 'vitest';
import { EPSG_27700, gridToWgs84 } from '../../crime/grid.js';
import { haversineM } from '../../crime/rules.js';

const dms = (d: number, m: number, s: number) => d + m / 60 + s / 3600;

/** Cartesian XYZ (m) to geodetic degrees on an ellipsoid (a, 1/f), by iteration. */
function geodetic(x: number, y: number, z: number, a: number, invF: number): { lat: number; lon: number } {
  const f = 1 / invF;
  const e2 = 2 * f - f * f;
  const p = Math.hypot(x, y);
  let lat = Math.atan2(z, p * (1 - e2));
  for (let i = 0; i < 10; i++) {
    const n = a / Math.sqrt(1 - e2 * Math.sin(lat) ** 2);
    lat = Math.atan2(z + e2 * n * Math.sin(lat), p);
  }
  return { lat: (lat * 180) / Math.PI, lon: (Math.atan2(y, x) * 180) / Math.PI };
}

describe('National Grid to WGS84 (proj4, EPSG:27700)', () => {
  it('projects as Ordnance Survey’s worked example (Airy 1830 and the National Grid, to the millimetre)', () => {
    // OS "A guide to coordinate systems in Great Britain", transverse Mercator worked example
    const airyTm = EPSG_27700.replace(/\+towgs84=\S+ /, '');
    const [e, n] = proj4('+proj=longlat +ellps=airy +no_defs', airyTm, [dms(1, 43, 4.5177), dms(52, 39, 27.2531)]) as [number, number];
    expect(e).toBeCloseTo(651409.903, 2);
    expect(n).toBeCloseTo(313177.27, 2);
  });

  it('applies Ordnance Survey’s Helmert transformation as in its worked example (to the centimetre)', () => {
    // OS worked example: ETRS89 XYZ (≈ WGS84) → OSGB36 XYZ with the published 7 parameters
    const etrs = geodetic(3790644.9, -110149.21, 5111482.97, 6378137, 298.257222101);
    const osgb = geodetic(3790269.549, -110038.064, 5111050.261, 6377563.396, 299.3249646);
    const airyTm = EPSG_27700.replace(/\+towgs84=\S+ /, '');
    const [e, n] = proj4('+proj=longlat +ellps=airy +no_defs', airyTm, [osgb.lon, osgb.lat]) as [number, number];
    const got = gridToWgs84(e, n);
    expect(haversineM(got.lat, got.lon, etrs.lat, etrs.lon)).toBeLessThan(0.05);
  });

  it('lands in Great Britain for the grid’s false origin region and moves ~1 m per metre of easting', () => {
    const a = gridToWgs84(457000, 340000); // Nottingham
    const b = gridToWgs84(457100, 340000);
    expect(a.lat).toBeGreaterThan(52.9);
    expect(a.lat).toBeLessThan(53);
    expect(haversineM(a.lat, a.lon, b.lat, b.lon)).toBeCloseTo(100, -0.5);
  });
});
