// Type-checks the provisioned dashboards against Grafana's published schema types
// (`npm run check`, i.e. tsc --noEmit; tests/host/test_grafana.py runs it).
//
// A JSON import widens every string literal to `string`, so a dashboard could never match the
// schema's string unions and enums (`"thresholds"` vs FieldColorModeId) as they are.
// `Widened<T>` relaxes exactly those to their base type and keeps everything else: object shape,
// required fields, arrays, numbers vs strings vs booleans.
import type { Dashboard } from "@grafana/schema";

import live from "../dashboards/live-posture.json" with { type: "json" };
import daily from "../dashboards/daily-weekly.json" with { type: "json" };
import headaches from "../dashboards/headaches.json" with { type: "json" };

type Widened<T> = T extends string
  ? string
  : T extends number
    ? number
    : T extends boolean
      ? boolean
      : T extends ReadonlyArray<infer U>
        ? Array<Widened<U>>
        : T extends object
          ? { [K in keyof T]: Widened<T[K]> }
          : T;

export const dashboards: Array<Widened<Dashboard>> = [live, daily, headaches];
