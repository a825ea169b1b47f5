"""Load an OpenStack config file through oslo.config and read every option set in it.

Run with the python of a venv that holds the services (see oslo.py, load_values()):

    VENV/bin/python _oslo_load.py --input-file F --namespace N [--namespace N ...]
                                  [--allow-deprecated] [--json]

Every option of the namespaces is registered (as oslo-config-generator lists them),
the file is parsed by ConfigOpts, and each key present in the file is read back
through oslo.config, so type and range errors (``debug = maybe``, ``bind_port = 99999``,
a bad ``$reference``) surface. Also reported: unknown sections/keys, keys repeated
in one section (single-valued options), deprecated names, and options that are
deprecated for removal (unless --allow-deprecated).

Dynamic groups that the generator cannot list are registered as the services do:
- a group with ``auth_type`` set gets that keystoneauth1 plugin's options
  (e.g. [keystone_authtoken], [nova], [placement], [neutron], [service_user]);
- with glance's multi-store namespace, every ``[DEFAULT] enabled_backends`` group
  plus the reserved ``os_glance_staging_store`` / ``os_glance_tasks_store`` groups
  get their store driver's options.

Exit status: 0 clean, 1 problems found (one ``ERROR ...`` line each), 2 usage.
Only the standard library and the venv's own packages are used.
"""

import argparse
import json
import logging
import sys


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument('--input-file', required=True)
    ap.add_argument('--namespace', action='append', required=True)
    ap.add_argument('--allow-deprecated', action='store_true')
    ap.add_argument('--keep-deprecated', action='append', default=[], metavar='SECTION/KEY',
                    help='one option deprecated for removal that is set on purpose')
    ap.add_argument('--json', action='store_true',
                    help='print {"errors": [...], "values": {group: {opt: value}}}')
    args = ap.parse_args(argv)

    logging.basicConfig(level=logging.ERROR)
    from oslo_config import cfg
    from oslo_config import generator

    errors = []
    conf = cfg.ConfigOpts()
    # (group, dest) -> opt, for every registered option
    registered = {}

    def group_name(group):
        if group is None:
            return 'DEFAULT'
        if isinstance(group, cfg.OptGroup):
            return group.name
        return str(group)

    def register(group, opts):
        gname = group_name(group)
        for opt in opts:
            try:
                if gname == 'DEFAULT':
                    conf.register_opt(opt)
                else:
                    conf.register_opt(opt, group=group)
                registered.setdefault((gname, opt.dest), opt)
            except cfg.DuplicateOptError:
                # Same name, different definition, from two namespaces (or a
                # plugin): the first registration wins, as in the services. Also
                # a group listed as a module's own OptGroup object that the
                # service's import already filled (nova's [glance] keystoneauth
                # session options: cafile, certfile, keyfile, insecure): the
                # option is known all the same.
                registered.setdefault((gname, opt.dest), opt)

    try:
        listed = generator._list_opts(args.namespace)
    except Exception as exc:  # a namespace that does not exist / fails to import
        print('ERROR loading namespaces %s: %s: %s'
              % (args.namespace, type(exc).__name__, exc))
        return 2
    for _namespace, groups in listed:
        for group, opts in groups:
            register(group, opts)

    # Namespaces list groups a service registers only when a feature is on
    # ([oslo_limit], [designate], ...) and some of their options are required.
    # ConfigOpts would insist on all of them: check required options ourselves,
    # only for groups the file actually has.
    required = [(g, opt) for (g, _d), opt in registered.items() if opt.required]
    for _g, opt in required:
        opt.required = False

    try:
        conf(args=[], project=None, default_config_files=[args.input_file],
             default_config_dirs=[], use_env=False)
    except cfg.Error as exc:
        print('ERROR %s: %s: %s' % (args.input_file, type(exc).__name__, exc))
        return 1

    # What the file sets, exactly as oslo.config parses it.
    sections = {}
    try:
        cfg.ConfigParser(args.input_file, sections).parse()
    except Exception as exc:
        print('ERROR %s: cannot parse: %s' % (args.input_file, exc))
        return 1

    def norm_section(s):
        return s if s == 'DEFAULT' else s.lower()

    def get(gname, dest):
        if gname == 'DEFAULT':
            return getattr(conf, dest)
        return getattr(getattr(conf, gname), dest)

    # keystoneauth1 plugin options for every group that names an auth_type.
    for section, keys in sections.items():
        gname = norm_section(section)
        if gname == 'DEFAULT' or (gname, 'auth_type') not in registered:
            continue
        if not any(k.replace('-', '_') in ('auth_type', 'auth_plugin') for k in keys):
            continue
        try:
            auth_type = get(gname, 'auth_type')
            if auth_type:
                from keystoneauth1 import loading as ks_loading
                plugin = ks_loading.get_plugin_loader(auth_type)
                register(gname, ks_loading.get_auth_plugin_conf_options(plugin))
        except Exception as exc:
            errors.append('[%s] auth_type: %s: %s' % (section, type(exc).__name__, exc))

    # glance multi-store: options of each enabled backend's driver.
    backends = {}
    if 'glance.multi_store' in args.namespace and ('DEFAULT', 'enabled_backends') in registered:
        try:
            backends = dict(conf.enabled_backends or {})
        except Exception as exc:
            errors.append('[DEFAULT] enabled_backends: bad value: %s' % exc)
    if backends:
        try:
            from glance_store import multi_backend
            reserved = {'os_glance_staging_store': 'file', 'os_glance_tasks_store': 'file'}
            # register_store_opts() mutates conf.enabled_backends; keep our copy.
            multi_backend.register_store_opts(conf, reserved_stores=reserved)
            for name in list(backends) + list(reserved):
                for gname, opt_group in conf._groups.items():
                    if gname == name:
                        for info in opt_group._opts.values():
                            registered.setdefault((gname, info['opt'].dest), info['opt'])
            known = {e for e in multi_backend._list_driver_opts()}
            for name, driver in backends.items():
                if not any(driver in k for k in known):
                    errors.append('[DEFAULT] enabled_backends: backend %r has unknown '
                                  'store type %r (known: %s)'
                                  % (name, driver, ', '.join(sorted(known))))
        except Exception as exc:
            errors.append('[DEFAULT] enabled_backends: %s: %s' % (type(exc).__name__, exc))

    # Index: (section, key normalised) -> (group, opt, deprecation note).
    # Deprecated names win over current ones, as in oslo-config-validator: a name
    # can be both (keystoneauth's tenant_name is a v2 plugin option and a
    # deprecated alias of project_name).
    index = {}
    for (gname, _dest), opt in registered.items():
        for dep in opt.deprecated_opts or []:
            dgroup = norm_section(dep.group or gname)
            dname = (dep.name or opt.dest).replace('-', '_')
            if (dgroup, dname) == (gname, opt.dest):
                continue
            note = 'deprecated name, use [%s] %s' % (gname, opt.dest)
            index.setdefault((dgroup, dname), (gname, opt, note))
    for (gname, _dest), opt in registered.items():
        for n in {opt.dest, opt.name}:
            index.setdefault((gname, n.replace('-', '_')), (gname, opt, None))

    present = {norm_section(s) for s in sections}
    for gname, opt in required:
        if gname in present:
            try:
                missing = get(gname, opt.dest) is None
            except Exception:
                missing = False  # reported below as a bad value
            if missing:
                errors.append('[%s] %s: required option not set' % (gname, opt.dest))

    known_groups = {g for g, _ in registered}
    values = {}
    count = 0
    for section, keys in sections.items():
        sname = norm_section(section)
        if sname not in known_groups:
            errors.append('[%s]: unknown section (no option of namespaces %s)'
                          % (section, ', '.join(args.namespace)))
            continue
        for key, vals in keys.items():
            nkey = key.replace('-', '_')
            hit = index.get((sname, nkey))
            if hit is None:
                errors.append('[%s] %s: unknown option' % (section, key))
                continue
            gname, opt, note = hit
            multi = getattr(opt, 'multi', False)
            if len(vals) > 1 and not multi:
                errors.append('[%s] %s: set %d times (single-valued option; the last one wins)'
                              % (section, key, len(vals)))
            if note and not args.allow_deprecated:
                errors.append('[%s] %s: %s' % (section, key, note))
            kept = '%s/%s' % (section, key) in args.keep_deprecated
            if opt.deprecated_for_removal and not args.allow_deprecated and not kept:
                reason = (opt.deprecated_reason or '').strip().replace('\n', ' ')
                errors.append('[%s] %s: deprecated for removal%s'
                              % (section, key, (': ' + reason) if reason else ''))
            try:
                value = get(gname, opt.dest)
            except Exception as exc:
                errors.append('[%s] %s = %s: bad value: %s'
                              % (section, key, vals[-1], exc))
                continue
            count += 1
            values.setdefault(gname, {})[opt.dest] = value

    if args.json:
        print(json.dumps({'file': args.input_file, 'errors': errors, 'values': values},
                         default=str, indent=1, sort_keys=True))
    else:
        for e in errors:
            print('ERROR %s' % e)
        if not errors:
            print('OK %s: %d option(s) read via %d namespace(s)'
                  % (args.input_file, count, len(args.namespace)))
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
