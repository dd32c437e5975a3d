import proj4 from 'proj4';

/**
 * British National Grid (OSGB36, EPSG:27700) eastings/northings to WGS84 latitude/longitude,
 * with proj4 and the EPSG:27700 definition: Airy 1830, the National Grid's transverse Mercator,
 * and Ordnance Survey's 7-parameter Helmert transformation to WGS84. The Helmert is good to about
 * 5 m across Great Britain (OS quotes 3.5 m at 95 %); OSTN15 would be cm-level but needs its grid.
 */
export const EPSG_27700 =
  '+proj=tmerc +lat_0=49 +lon_0=-2 +k=0.9996012717 +x_0=400000 +y_0=-100000 +ellps=airy ' +
  '+towgs84=446.448,-125.157,542.06,0.15,0.247,0.842,-20.489 +units=m +no_defs';

const toWgs84 = proj4(EPSG_27700, 'WGS84');

/** Easting and northing in metres (OSGB36) to WGS84 degrees. */
export function gridToWgs84(easting: number, northing: number): { lat: number; lon: number } {
  const [lon, lat] = toWgs84.forward([easting, northing]) as [number, number];
  return { lat, lon };
}
