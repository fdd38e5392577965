#!/usr/bin/env node
// Offline validation of Kubernetes manifests against the Kubernetes API
// schema (kubernetes-models) and the Prometheus Operator CRDs
// (@kubernetes-models/prometheus-operator), rejecting unknown fields.
//
//   node test/k8s/validate.js [FILE|DIR ...]     (default: deploy/kubernetes)
//
// Every YAML document of every file is one object; each must have an
// apiVersion and kind that the models know (an unknown kind is an error,
// not a skip), pass the model's JSON-schema validation, and contain no
// field the schema does not define. The schemas of kubernetes-models do
// not forbid extra properties (the API server drops or rejects them, but
// only there), so the unknown-field check is done here: the object is
// handed to the schema's own validator behind a Proxy that records which
// properties the validator looked at; a property of the manifest that the
// validator never read is not in the schema. Objects the schema treats as
// maps (labels, ConfigMap data, resource lists) are walked key by key by
// the validator, which marks their keys as read.
//
// Prints one line per object and a closing "N passed, N failed"; exits 1
// when any object fails, 2 on a usage or install problem.
'use strict';

const fs = require('fs');
const path = require('path');

function need(name) {
  try {
    return require(name);
  } catch (e) {
    process.stderr.write(`validate.js: cannot load ${name} (${e.code || e.message}); ` +
      'run `npm ci` in test/k8s/ (.ci/run does)\n');
    process.exit(2);
  }
}

const YAML = need('yaml');

// apiVersion/kind -> model class, from every group/version the packages export.
function loadModels() {
  const models = new Map();
  for (const pkg of ['kubernetes-models', '@kubernetes-models/prometheus-operator']) {
    const meta = need(`${pkg}/package.json`);
    for (const sub of Object.keys(meta.exports || {})) {
      // "./v1", "./apps/v1", "./monitoring.coreos.com/v1": group versions only
      if (!/^\.\/(?:[a-z0-9.-]+\/)?v[0-9]+(?:(?:alpha|beta)[0-9]+)?$/.test(sub)) continue;
      const mod = need(`${pkg}/${sub.slice(2)}`);
      for (const value of Object.values(mod)) {
        if (typeof value === 'function' && value.apiVersion && value.kind &&
            typeof value.prototype.validate === 'function') {
          models.set(`${value.apiVersion}/${value.kind}`, value);
        }
      }
    }
  }
  return models;
}

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

// Wraps `root` so that reads by the validator are recorded per object.
function tracer(root) {
  const seen = new Map(); // target object -> {read: Set, enumerated: bool, path}
  const proxies = new WeakMap();
  function wrap(value, where) {
    if (value === null || typeof value !== 'object') return value;
    if (proxies.has(value)) return proxies.get(value);
    const rec = { read: new Set(), enumerated: false, path: where };
    seen.set(value, rec);
    const p = new Proxy(value, {
      get(t, key, recv) {
        if (typeof key === 'string') rec.read.add(key);
        const v = Reflect.get(t, key, recv);
        if (typeof key !== 'string' || !Object.prototype.hasOwnProperty.call(t, key)) return v;
        return wrap(v, Array.isArray(t) ? `${where}[${key}]` : `${where}.${key}`);
      },
      has(t, key) {
        if (typeof key === 'string') rec.read.add(key);
        return Reflect.has(t, key);
      },
      ownKeys(t) {
        rec.enumerated = true;
        return Reflect.ownKeys(t);
      },
      getOwnPropertyDescriptor(t, key) {
        if (typeof key === 'string') rec.read.add(key);
        return Reflect.getOwnPropertyDescriptor(t, key);
      },
    });
    proxies.set(value, p);
    return p;
  }
  const proxy = wrap(root, '');
  function unknownFields() {
    const out = [];
    for (const [obj, rec] of seen) {
      if (!isPlainObject(obj) || rec.enumerated) continue;
      for (const key of Object.keys(obj)) {
        if (!rec.read.has(key)) out.push(`${rec.path}.${key}`.replace(/^\./, ''));
      }
    }
    // a field whose parent the validator never entered is unknown too;
    // report only the outermost one
    return out.sort();
  }
  return { proxy, unknownFields };
}

function validateObject(models, obj) {
  if (!isPlainObject(obj)) return ['not a mapping'];
  const key = `${obj.apiVersion}/${obj.kind}`;
  const Model = models.get(key);
  if (!Model) return [`unknown apiVersion/kind ${key}`];
  // The model copies the data (dropping undefined values) as the library's
  // own validate() does; its validator then runs on the traced copy.
  const model = new Model(obj);
  const plain = JSON.parse(JSON.stringify(model));
  const { proxy, unknownFields } = tracer(plain);
  const errors = [];
  try {
    Model.prototype.validate.call(proxy);
  } catch (e) {
    errors.push(`schema: ${e.message}`);
  }
  if (errors.length === 0) {
    for (const f of unknownFields()) errors.push(`unknown field ${f}`);
  }
  return errors;
}

function yamlFiles(arg) {
  const st = fs.statSync(arg);
  if (!st.isDirectory()) return [arg];
  return fs.readdirSync(arg).sort().flatMap((n) => {
    const p = path.join(arg, n);
    if (fs.statSync(p).isDirectory()) return yamlFiles(p);
    return /\.ya?ml$/.test(n) ? [p] : [];
  });
}

function main(argv) {
  const root = path.resolve(__dirname, '..', '..');
  const args = argv.length ? argv : [path.join(root, 'deploy', 'kubernetes')];
  const models = loadModels();
  let passed = 0;
  let failed = 0;
  for (const file of args.flatMap(yamlFiles)) {
    const docs = YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'), { uniqueKeys: true });
    docs.forEach((doc, i) => {
      const label = `${path.relative(process.cwd(), file)}#${i}`;
      const problems = doc.errors.map((e) => `yaml: ${e.message}`);
      const obj = problems.length ? null : doc.toJS();
      if (obj === null && problems.length === 0) return; // an empty document
      if (!problems.length) problems.push(...validateObject(models, obj));
      const what = obj && isPlainObject(obj)
        ? `${obj.kind}/${(obj.metadata && obj.metadata.name) || '?'}` : '?';
      if (problems.length) {
        failed++;
        console.log(`FAIL ${label} ${what}`);
        for (const p of problems) console.log(`  ${p}`);
      } else {
        passed++;
        console.log(`ok   ${label} ${what}`);
      }
    });
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed || passed === 0 ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
