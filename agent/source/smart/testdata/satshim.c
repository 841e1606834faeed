/*
 * satshim: an LD_PRELOAD library that makes smartctl read an ATA drive
 * from recorded pages. It answers the SG_IO ioctl for SCSI ATA PASS-THROUGH
 * (16) the way libata's SAT layer does, from files named in the
 * environment, so that the real smartctl binary decodes the same bytes the
 * native reader does. Everything else goes to the real ioctl.
 *
 *   SATSHIM_IDENTIFY, SATSHIM_DATA, SATSHIM_THRESH  512-byte IDENTIFY DEVICE,
 *                              SMART READ DATA and READ THRESHOLDS pages
 *   SATSHIM_STATUS             "fail": SMART RETURN STATUS says threshold
 *                              exceeded (default: passed)
 *   SATSHIM_POWER              CHECK POWER MODE count register, hex
 *                              (default ff: active or idle)
 *   SATSHIM_SENSE              "fixed": fixed-format sense (the kernel's
 *                              default since 6.10 for D_SENSE=0); default
 *                              descriptor format
 *   SATSHIM_LOG                file that gets one line per command: the
 *                              ATA command ("e5", "ec", "b0/d0", ... or
 *                              "scsi-12" for INQUIRY) and the CDB in hex
 *
 * Part of hwheal's tests (agent/source/smart); not shipped.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <scsi/sg.h>

static int load(const char *env, unsigned char *buf, size_t n) {
	const char *path = getenv(env);
	if (!path) return 0;
	FILE *f = fopen(path, "rb");
	if (!f) return 0;
	size_t got = fread(buf, 1, n, f);
	fclose(f);
	return got == n;
}

static void logcmd(const unsigned char *cdb, int len) {
	const char *path = getenv("SATSHIM_LOG");
	if (!path) return;
	FILE *f = fopen(path, "a");
	if (!f) return;
	if (len == 16 && cdb[0] == 0x85 && cdb[14] == 0xb0) fprintf(f, "b0/%02x ", cdb[4]);
	else if (len == 16 && cdb[0] == 0x85) fprintf(f, "%02x ", cdb[14]);
	else fprintf(f, "scsi-%02x ", cdb[0]);
	for (int i = 0; i < len; i++) fprintf(f, "%02x", cdb[i]);
	fprintf(f, "\n");
	fclose(f);
}

struct regs { unsigned char error, count, lbal, lbam, lbah, device, status; };

static void sense(struct sg_io_hdr *h, unsigned char key, unsigned char asc, unsigned char ascq, const struct regs *r) {
	unsigned char *sb = h->sbp;
	unsigned char b[32] = {0};
	int n;
	const char *fmt = getenv("SATSHIM_SENSE");
	if (fmt && !strcmp(fmt, "fixed")) {
		/* VALID (bit 7) as libata sets it: the registers are in the information fields. */
		b[0] = 0xf0; b[2] = key; b[7] = 10; b[12] = asc; b[13] = ascq;
		b[3] = r->error; b[4] = r->status; b[5] = r->device; b[6] = r->count;
		b[9] = r->lbal; b[10] = r->lbam; b[11] = r->lbah;
		n = 18;
	} else {
		b[0] = 0x72; b[1] = key; b[2] = asc; b[3] = ascq; b[7] = 14;
		unsigned char *d = b + 8;
		d[0] = 0x09; d[1] = 0x0c;
		d[3] = r->error; d[5] = r->count; d[7] = r->lbal; d[9] = r->lbam; d[11] = r->lbah;
		d[12] = r->device; d[13] = r->status;
		n = 22;
	}
	if (n > h->mx_sb_len) n = h->mx_sb_len;
	memcpy(sb, b, n);
	h->sb_len_wr = n;
	h->status = 0x02; /* CHECK CONDITION */
	h->masked_status = 0x01;
	h->driver_status = 0x08; /* DRIVER_SENSE */
	h->info |= SG_INFO_CHECK;
}

static int sat(struct sg_io_hdr *h) {
	unsigned char *c = h->cmdp;
	unsigned char page[512];
	struct regs r = {0};
	h->status = h->masked_status = h->host_status = h->driver_status = 0;
	h->sb_len_wr = 0; h->resid = 0; h->info = 0; h->duration = 1;
	logcmd(c, h->cmd_len);
	if (h->cmd_len == 6 && c[0] == 0x12 && !(c[1] & 1)) {
		/* Standard INQUIRY: a direct-access device whose vendor is "ATA",
		 * which is how smartctl's autodetection picks SAT. */
		unsigned char inq[36] = {0x00, 0x00, 0x05, 0x02, 31};
		memcpy(inq + 8, "ATA     hwheal satshim    0001", 28);
		size_t n = h->dxfer_len < sizeof inq ? h->dxfer_len : sizeof inq;
		memcpy(h->dxferp, inq, n);
		h->resid = h->dxfer_len - n;
		return 0;
	}
	if (h->cmd_len != 16 || c[0] != 0x85) {
		/* Not ATA PASS-THROUGH (16): ILLEGAL REQUEST, invalid opcode. */
		sense(h, 0x05, 0x20, 0x00, &r);
		return 0;
	}
	unsigned char feat = c[4], cmd = c[14];
	int ck_cond = c[2] & 0x20;
	r.count = c[6]; r.lbal = c[8]; r.lbam = c[10]; r.lbah = c[12]; r.device = c[13];
	r.status = 0x50; /* DRDY | DSC */
	const char *src = NULL;
	switch (cmd) {
	case 0xe5: {
		const char *p = getenv("SATSHIM_POWER");
		r.count = p ? (unsigned char)strtoul(p, NULL, 16) : 0xff;
		break;
	}
	case 0xec: src = "SATSHIM_IDENTIFY"; break;
	case 0xb0:
		if (feat == 0xd0) src = "SATSHIM_DATA";
		else if (feat == 0xd1) src = "SATSHIM_THRESH";
		else if (feat == 0xda) {
			const char *s = getenv("SATSHIM_STATUS");
			if (s && !strcmp(s, "fail")) { r.lbam = 0xf4; r.lbah = 0x2c; }
			else { r.lbam = 0x4f; r.lbah = 0xc2; }
		} else goto abort;
		break;
	default:
		goto abort;
	}
	if (src) {
		if (!load(src, page, sizeof page)) goto abort;
		if (h->dxfer_direction != SG_DXFER_FROM_DEV || h->dxfer_len < sizeof page) goto abort;
		memcpy(h->dxferp, page, sizeof page);
		h->resid = h->dxfer_len - sizeof page;
	}
	if (ck_cond) sense(h, 0x01, 0x00, 0x1d, &r); /* RECOVERED ERROR, ATA PASS THROUGH INFORMATION AVAILABLE */
	return 0;
abort:
	/* The drive aborts: ERR with ABRT. */
	r.status = 0x51; r.error = 0x04;
	sense(h, 0x0b, 0x00, 0x00, &r);
	return 0;
}

int ioctl(int fd, unsigned long req, ...) {
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (req == SG_IO) return sat(arg);
	int (*real)(int, unsigned long, void *) = (int (*)(int, unsigned long, void *))dlsym(RTLD_NEXT, "ioctl");
	return real(fd, req, arg);
}
