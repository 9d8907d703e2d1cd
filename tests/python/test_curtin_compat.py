"""Each function of deployer's curtin compat package, run under python3.

Driven by tests/tests/curtin_py.rs, which unpacks the package onto PYTHONPATH, builds a small
real root (busybox, stub tools that log their arguments to /var/log/tools.log) in $TEST_TARGET,
a state dir in $TEST_STATE, a partitioned loop disk ($TEST_DISK, $TEST_PART), and points
$DEPLOYER_CURTIN at the deployer binary, so the native steps run for real.
"""

import io
import json
import logging
import os
import shutil
import tempfile
import unittest

import curtin
from curtin import block, config, distro, futil, log, paths, util
from curtin.commands import apt_config, curthooks

TARGET = os.environ["TEST_TARGET"]
STATE = os.environ["TEST_STATE"]


def tpath(p):
    return os.path.join(TARGET, p.lstrip("/"))


def tools_log():
    try:
        with open(tpath("var/log/tools.log")) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def clear_tools_log():
    if os.path.exists(tpath("var/log/tools.log")):
        os.unlink(tpath("var/log/tools.log"))


def state():
    return {
        "target": TARGET, "config": os.path.join(STATE, "config"),
        "fstab": os.path.join(STATE, "fstab"), "scratch": os.path.join(STATE, "scratch"),
        "network_config": os.path.join(STATE, "network_config"),
        "network_state": os.path.join(STATE, "network_state"),
        "interfaces": os.path.join(STATE, "interfaces"), "report_stack_prefix": "x",
    }


class Package(unittest.TestCase):
    def test_features_and_version(self):
        self.assertIn("STORAGE_CONFIG_V1_DD", curtin.FEATURES)
        self.assertIn("CENTOS_APPLY_NETWORK_CONFIG", curtin.FEATURES)
        self.assertTrue(curtin.__version__)
        self.assertTrue(curtin.DEPLOYER_COMPAT)


class Util(unittest.TestCase):
    def test_load_command_environment(self):
        env = {"TARGET_MOUNT_POINT": "/t", "OUTPUT_FSTAB": "/s/fstab", "CONFIG": "/s/c",
               "WORKING_DIR": "/w", "OUTPUT_NETWORK_CONFIG": "/s/n",
               "OUTPUT_NETWORK_STATE": "/s/ns", "OUTPUT_INTERFACES": "/s/i",
               "CURTIN_REPORTSTACK": "cmd-install/stage-curthooks"}
        st = util.load_command_environment(env)
        self.assertEqual(st["target"], "/t")
        self.assertEqual(st["fstab"], "/s/fstab")
        self.assertEqual(st["scratch"], "/w")
        self.assertEqual(st["report_stack_prefix"], "cmd-install/stage-curthooks")
        self.assertEqual(sorted(st), sorted(["scratch", "fstab", "interfaces", "config",
                                             "target", "network_state", "network_config",
                                             "report_stack_prefix"]))
        self.assertIsNone(util.load_command_environment({})["target"])
        with self.assertRaises(KeyError):
            util.load_command_environment({}, strict=True)

    def test_get_dd_images_and_sanitize_source(self):
        srcs = {"00_cmdline": {"type": "dd-gz", "uri": "http://h/i.gz"},
                "01": {"type": "tgz", "uri": "http://h/r.tgz"}, "02": "dd-xz:http://h/x"}
        self.assertEqual(util.get_dd_images(srcs), [srcs["00_cmdline"]])
        self.assertEqual(util.get_dd_images([srcs["00_cmdline"]]), [])
        self.assertEqual(util.sanitize_source("dd-xz:http://h/x"),
                         {"type": "dd-xz", "uri": "http://h/x"})
        self.assertEqual(util.sanitize_source("squashfs://http://h/r"),
                         {"type": "fsimage", "uri": "http://h/r"})
        self.assertEqual(util.sanitize_source("cp:///media/root-ro"),
                         {"type": "tgz", "uri": "cp:///media/root-ro"})

    def test_subp(self):
        out, err = util.subp(["sh", "-c", "echo out; echo err >&2"], capture=True)
        self.assertEqual((out, err), ("out\n", "err\n"))
        self.assertEqual(util.subp(["true"]), (None, None))
        out, _ = util.subp(["cat"], data="in", capture=True)
        self.assertEqual(out, "in")
        with self.assertRaises(util.ProcessExecutionError) as e:
            util.subp(["sh", "-c", "exit 3"])
        self.assertEqual(e.exception.exit_code, 3)
        util.subp(["sh", "-c", "exit 3"], rcs=[3])
        out, _ = util.subp("echo $0", shell=True, capture=True)
        self.assertTrue(out.strip())

    def test_subp_in_target_and_chrootable_target(self):
        out, _ = util.subp(["cat", "/etc/os-release"], target=TARGET, capture=True)
        self.assertIn("ID=debian", out)
        with util.ChrootableTarget(TARGET) as c:
            out, _ = c.subp(["cat"], data=b"stdin reaches the target", capture=True)
            self.assertEqual(out, "stdin reaches the target")
            out, _ = c.subp(["sh", "-c", "test -e /dev/null && echo binds"], capture=True)
            self.assertEqual(out, "binds\n")
            self.assertEqual(c.path("/etc"), tpath("etc"))
        with util.RunInChroot(TARGET) as in_chroot:
            out, _ = in_chroot(["cat", "/etc/os-release"], capture=True)
            self.assertIn("ID=debian", out)
        with self.assertRaises(util.ProcessExecutionError):
            util.ChrootableTarget(TARGET).subp(["sh", "-c", "exit 4"])

    def test_files_and_which(self):
        d = tempfile.mkdtemp()
        p = os.path.join(d, "a/b")
        util.write_file(p, "x", mode=0o600)
        self.assertEqual(util.load_file(p), "x")
        self.assertEqual(os.stat(p).st_mode & 0o777, 0o600)
        util.del_file(p)
        util.del_file(p)
        self.assertEqual(util.which("update-initramfs", target=TARGET),
                         "/usr/sbin/update-initramfs")
        self.assertIsNone(util.which("no-such-tool", target=TARGET))
        self.assertEqual(util.human2bytes("1G"), 1 << 30)
        shutil.rmtree(d)


class Config(unittest.TestCase):
    def test_load_command_config(self):
        class Args:
            config = {"a": 1}
        self.assertEqual(config.load_command_config(Args(), {}), {"a": 1})
        self.assertEqual(config.load_command_config(None, {}), {})
        d = tempfile.mkdtemp()
        p = os.path.join(d, "config")
        with open(p, "w") as f:
            json.dump({"sources": {"00_cmdline": {"type": "tgz", "uri": "u"}}}, f)
        self.assertEqual(config.load_command_config({}, {"config": p})["sources"]["00_cmdline"]["uri"], "u")
        self.assertEqual(config.load_command_config(None, {"config": p}), config.load_config(p))
        shutil.rmtree(d)

    def test_load_config_yaml_and_archive(self):
        d = tempfile.mkdtemp()
        p = os.path.join(d, "c.yaml")
        with open(p, "w") as f:
            f.write("#cloud-config\na: {b: 1}\n")
        self.assertEqual(config.load_config(p), {"a": {"b": 1}})
        with open(p, "w") as f:
            f.write("#curtin-config-archive\n- '#curtin-config\n\n  a: 1'\n"
                    "- {type: text/curtin-config, content: 'b: 2'}\n")
        self.assertEqual(config.load_config(p), {"a": 1, "b": 2})
        shutil.rmtree(d)

    def test_merge(self):
        c = {"a": {"b": 1, "c": [1]}}
        config.merge_config(c, {"a": {"c": [2], "d": 3}})
        self.assertEqual(c, {"a": {"b": 1, "c": [2], "d": 3}})
        self.assertEqual(config.cmdarg2cfg("a/b=1"), {"a": {"b": "1"}})
        self.assertEqual(config.cmdarg2cfg("json:a=[1]"), {"a": [1]})
        self.assertTrue(config.value_as_boolean("yes"))
        self.assertFalse(config.value_as_boolean("false"))
        self.assertIn("a: 1", config.dump_config({"a": 1}))


class Paths(unittest.TestCase):
    def test_target_path(self):
        self.assertEqual(paths.target_path(None), "/")
        self.assertEqual(paths.target_path("/t", "/etc/fstab"), "/t/etc/fstab")
        self.assertEqual(paths.target_path("//t/", "etc"), "/t/etc")
        self.assertEqual(paths.target_path("", "/x"), "/x")
        with self.assertRaises(ValueError):
            paths.target_path(1)


class Distro(unittest.TestCase):
    def root(self, files):
        d = tempfile.mkdtemp()
        for p, c in files.items():
            util.write_file(os.path.join(d, p), c)
        return d

    def test_get_distroinfo(self):
        self.assertEqual(distro.get_distroinfo(TARGET), ("debian", "debian"))
        r = self.root({"etc/os-release": 'ID="rocky"\nID_LIKE="rhel centos fedora"\n'})
        self.assertEqual(distro.get_distroinfo(r), ("rocky", "redhat"))
        r = self.root({"etc/os-release": 'ID=azurelinux\nID_LIKE="mariner fedora"\n'})
        self.assertEqual(distro.get_distroinfo(r).family, "redhat")
        r = self.root({"etc/redhat-release": "CentOS Linux release 7.9.2009 (Core)\n"})
        self.assertEqual(distro.get_distroinfo(r), ("centos", "redhat"))
        r = self.root({"etc/os-release": "ID=plan9\n"})
        with self.assertRaises(ValueError):
            distro.get_distroinfo(r)
        # Alma's packer-maas hook then takes its own path (deployer's builtin is Debian's).
        self.assertNotIn("almalinux", distro.DISTRO_NAMES)
        r = self.root({"etc/os-release": 'ID="almalinux"\nID_LIKE="rhel centos fedora"\n'})
        self.assertEqual(distro.get_distroinfo(r), ("rhel", "redhat"))
        self.assertEqual(distro.get_osfamily(TARGET), distro.DISTROS.debian)


class Log(unittest.TestCase):
    def test_basic_config_and_logger(self):
        s = io.StringIO()
        log.basicConfig(stream=s, verbosity=log.DEBUG)
        log.LOG.debug("hello %s", "there")
        self.assertIn("hello there", s.getvalue())
        self.assertEqual(log.LOG.name, "curtin")
        self.assertEqual(log.LOG.level, logging.DEBUG)
        log.basicConfig(stream=s, verbosity=0)
        self.assertEqual(log.LOG.level, logging.ERROR)


class Futil(unittest.TestCase):
    def test_write_files(self):
        d = tempfile.mkdtemp()
        futil.write_files({"a": {"path": "/etc/x.cfg", "content": "c", "permissions": "0600"},
                           "b": {"content": "no path"}}, d)
        self.assertEqual(util.load_file(os.path.join(d, "etc/x.cfg")), "c")
        self.assertEqual(os.stat(os.path.join(d, "etc/x.cfg")).st_mode & 0o777, 0o600)
        shutil.rmtree(d)


class Block(unittest.TestCase):
    def test_lsblock_and_partitions(self):
        disk, part = os.environ["TEST_DISK"], os.environ["TEST_PART"]
        data = block._lsblock()
        self.assertIn(os.path.basename(disk), data)
        self.assertEqual(data[os.path.basename(disk)]["TYPE"], "loop")
        self.assertEqual(block.get_blockdev_for_partition(part), (disk, "1"))
        self.assertEqual(block.get_blockdev_for_partition(disk), (disk, None))
        mp = os.environ["TEST_MOUNT"]
        self.assertEqual(block.get_devices_for_mp(mp), [part])


class Curthooks(unittest.TestCase):
    def setUp(self):
        clear_tools_log()

    def test_builtin_curthooks(self):
        cfg = config.load_command_config(None, state())
        cfg["cloudconfig"] = {"maas-datasource": {"content": "datasource_list: [ MAAS ]\n"}}
        curthooks.builtin_curthooks(cfg, TARGET, state())
        self.assertIn("MAAS", util.load_file(
            tpath("etc/cloud/cloud.cfg.d/95-cloudconfig-maas-datasource.cfg")))
        self.assertIn("eth0", util.load_file(
            tpath("etc/cloud/cloud.cfg.d/50-curtin-networking.cfg")))
        self.assertIn("LABEL=root", util.load_file(tpath("etc/fstab")))
        self.assertIn("update-grub", tools_log())

    def test_apply_networking(self):
        os.unlink(tpath("etc/cloud/cloud.cfg.d/50-curtin-networking.cfg")) if os.path.exists(
            tpath("etc/cloud/cloud.cfg.d/50-curtin-networking.cfg")) else None
        curthooks.apply_networking(TARGET, state())
        text = util.load_file(tpath("etc/cloud/cloud.cfg.d/50-curtin-networking.cfg"))
        self.assertIn("eth0", text)

    def test_copy_fstab(self):
        curthooks.copy_fstab(state()["fstab"], TARGET)
        text = util.load_file(tpath("etc/fstab"))
        self.assertTrue(text.startswith("# /etc/fstab: static file system information."))
        self.assertIn("LABEL=root / ext4", text)
        curthooks.copy_fstab(None, TARGET)

    def test_update_initramfs(self):
        util.write_file(tpath("boot/vmlinuz-6.1.0-9-amd64"), "k")
        curthooks.update_initramfs(TARGET, all_kernels=True)
        self.assertIn("update-initramfs -c -k 6.1.0-9-amd64", tools_log())

    def test_disable_and_enable_update_initramfs(self):
        curthooks.disable_update_initramfs({}, TARGET, machine="x86_64")
        self.assertIn("dpkg-divert --add --rename --divert "
                      "/usr/sbin/update-initramfs.curtin-disabled /usr/sbin/update-initramfs",
                      tools_log())
        self.assertTrue(util.load_file(tpath("usr/sbin/update-initramfs")).startswith("#!/bin/true"))
        self.assertTrue(curthooks.update_initramfs_is_disabled(TARGET))
        curthooks.update_initramfs(TARGET)  # diverted: nothing runs
        self.assertNotIn("update-initramfs -", tools_log())
        curthooks.enable_update_initramfs({}, TARGET, machine="x86_64")
        self.assertIn("dpkg-divert --rename --remove /usr/sbin/update-initramfs", tools_log())
        self.assertFalse(curthooks.update_initramfs_is_disabled(TARGET))
        self.assertIn("update-initramfs", util.load_file(tpath("usr/sbin/update-initramfs")))

    def test_disable_overlayroot(self):
        util.write_file(tpath("etc/overlayroot.local.conf"), "x")
        curthooks.disable_overlayroot({"disable_overlayroot": False}, TARGET)
        self.assertTrue(os.path.exists(tpath("etc/overlayroot.local.conf")))
        curthooks.disable_overlayroot({}, TARGET)
        self.assertTrue(os.path.exists(tpath("etc/overlayroot.local.conf.old")))

    def test_install_missing_packages_does_nothing(self):
        self.assertIsNone(curthooks.install_missing_packages({}, TARGET, osfamily="debian"))

    def test_add_swap_makes_the_swap_file_in_the_fstab(self):
        fstab = state()["fstab"]
        before = util.load_file(fstab) if os.path.exists(fstab) else None
        with open(fstab, "w") as f:
            f.write("LABEL=root / ext4 defaults 0 1\n")
        try:
            curthooks.add_swap({"swap": None}, TARGET, fstab)
            curthooks.add_swap({"swap": {"size": "0B"}}, TARGET, fstab)
            self.assertFalse(os.path.exists(tpath("swap.img")))
            curthooks.add_swap({"swap": {"size": "8M"}}, TARGET, fstab)
            self.assertEqual(os.path.getsize(tpath("swap.img")), 8 << 20)
            with open(tpath("swap.img"), "rb") as f:
                self.assertEqual(f.read(4096)[-10:], b"SWAPSPACE2")
            self.assertIn("/swap.img\tnone\tswap\tsw\t0\t0", util.load_file(fstab))
        finally:
            if os.path.exists(tpath("swap.img")):
                os.unlink(tpath("swap.img"))
            if before is None:
                os.unlink(fstab)
            else:
                util.write_file(fstab, before)

    def test_configure_iscsi_and_mdadm(self):
        etcd = tempfile.mkdtemp()
        util.write_file(os.path.join(etcd, "nodes/iqn.x/default"), "node")
        util.write_file(os.path.join(etcd, "mdadm.conf"), "ARRAY /dev/md0\n")
        curthooks.configure_iscsi({}, etcd, TARGET, osfamily=distro.DISTROS.debian)
        self.assertEqual(util.load_file(tpath("etc/iscsi/nodes/iqn.x/default")), "node")
        curthooks.configure_mdadm({}, etcd, TARGET, osfamily=distro.DISTROS.debian)
        self.assertIn("ARRAY", util.load_file(tpath("etc/mdadm/mdadm.conf")))
        self.assertIn("dpkg-reconfigure --frontend=noninteractive mdadm", tools_log())
        with self.assertRaises(ValueError):
            curthooks.configure_mdadm({}, etcd, TARGET, osfamily="gentoo")
        shutil.rmtree(etcd)

    def test_kernel_img_conf_crypttab_dname_rules(self):
        rel = util.load_file(tpath("etc/os-release"))
        try:
            util.write_file(tpath("etc/os-release"), "ID=ubuntu\nVERSION_ID=\"18.04\"\n")
            curthooks.setup_kernel_img_conf(TARGET)
            self.assertIn("link_in_boot = no", util.load_file(tpath("etc/kernel-img.conf")))
            os.unlink(tpath("etc/kernel-img.conf"))
            util.write_file(tpath("etc/os-release"), "ID=ubuntu\nVERSION_ID=\"22.04\"\n")
            curthooks.setup_kernel_img_conf(TARGET)
            self.assertFalse(os.path.exists(tpath("etc/kernel-img.conf")))
        finally:
            util.write_file(tpath("etc/os-release"), rel)
        d = tempfile.mkdtemp()
        util.write_file(os.path.join(d, "crypttab"), "crypt /dev/x none\n")
        curthooks.copy_crypttab(os.path.join(d, "crypttab"), TARGET)
        self.assertIn("crypt", util.load_file(tpath("etc/crypttab")))
        util.write_file(os.path.join(d, "rules.d/70-dname.rules"), "RULE\n")
        curthooks.copy_dname_rules(os.path.join(d, "rules.d"), TARGET)
        self.assertEqual(util.load_file(tpath("etc/udev/rules.d/70-dname.rules")), "RULE\n")
        shutil.rmtree(d)

    def test_handle_cloudconfig(self):
        base = tpath("etc/cloud/cloud.cfg.d")
        curthooks.handle_cloudconfig(
            {"maas-cloud-config": {"path": "/ignored", "content": "#cloud-config\nx: 1\n"}},
            base_dir=base)
        self.assertEqual(util.load_file(os.path.join(base, "95-cloudconfig-maas-cloud-config.cfg")),
                         "#cloud-config\nx: 1\n")
        self.assertFalse(os.path.exists(tpath("ignored")))
        with self.assertRaises(ValueError):
            curthooks.handle_cloudconfig(["not", "a", "dict"], base_dir=base)

    def test_handle_pollinate_user_agent(self):
        curthooks.handle_pollinate_user_agent({}, TARGET)
        self.assertFalse(os.path.exists(tpath("etc/pollinate/add-user-agent")))
        util.write_file(tpath("usr/bin/pollinate"), "#!/bin/sh\n", mode=0o755)
        try:
            curthooks.handle_pollinate_user_agent({"pollinate": {"user_agent": {"k": "v"}}}, TARGET)
            text = util.load_file(tpath("etc/pollinate/add-user-agent"))
            self.assertIn("k/v # written by curtin", text)
            self.assertIn("curtin/", text)
        finally:
            os.unlink(tpath("usr/bin/pollinate"))

    def test_centos_apply_network_config(self):
        util.write_file(tpath("etc/sysconfig/network-scripts/ifcfg-eth0"), "x")
        util.write_file(tpath("etc/sysconfig/network-scripts/ifcfg-lo"), "lo")
        curthooks.centos_apply_network_config(
            {"version": 1, "config": [{"type": "physical", "name": "ens3",
                                       "subnets": [{"type": "dhcp"}]}]}, TARGET)
        self.assertFalse(os.path.exists(tpath("etc/sysconfig/network-scripts/ifcfg-eth0")))
        self.assertTrue(os.path.exists(tpath("etc/sysconfig/network-scripts/ifcfg-lo")))
        self.assertIn("ens3", util.load_file(tpath("etc/cloud/cloud.cfg.d/50-curtin-networking.cfg")))


class AptConfig(unittest.TestCase):
    def test_apply_debconf_selections(self):
        clear_tools_log()
        util.write_file(tpath("etc/cloud/cloud.cfg.d/90_dpkg.cfg"), "datasource_list: [None]\n")
        apt_config.apply_debconf_selections({"debconf_selections": {
            "maas": "cloud-init cloud-init/datasources multiselect MAAS\n",
            "grub2": "grub2 grub2/update_nvram boolean false"}}, TARGET)
        self.assertIn("debconf-set-selections", tools_log())
        self.assertIn("grub2/update_nvram", util.load_file(tpath("var/log/debconf.in")))
        # cloud-init is installed (dpkg status): its dpkg config is cleaned and it is reconfigured.
        self.assertFalse(os.path.exists(tpath("etc/cloud/cloud.cfg.d/90_dpkg.cfg")))
        self.assertIn("dpkg-reconfigure --frontend=noninteractive cloud-init", tools_log())
        apt_config.apply_debconf_selections({}, TARGET)


if __name__ == "__main__":
    unittest.main()
