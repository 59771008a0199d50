/* scripts/emu/init.c - /init of the initramfs that scripts/run-emulated-avx512
 * boots under Bochs.  It runs /prog with the arguments baked into /args,
 * brackets the program's output with marker lines that the host script cuts
 * on, reports the exit status in the closing marker, and powers the emulated
 * machine off so that Bochs ends.
 *
 * Built by the script with `gcc -static -Os`: there is no libc in the
 * initramfs, so every program in it is static.
 *
 * /args: the arguments, each ended by a NUL byte (the host writes them;
 * nothing is parsed from the kernel command line, so no quoting rules apply).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define MAX_ARGS 256

/* Bochs ends the simulation when "Shutdown" is written to this port (its
 * "unmapped" device); the fallback when ACPI power-off does not stop it. */
#define BOCHS_SHUTDOWN_PORT 0x8900

static void power_off(void)
{
	/* The tty layer still holds output the UART has not sent: powering off
	 * now would cut the program's last lines and the exit marker. */
	fflush(stdout);
	tcdrain(1);
	sync();
	reboot(RB_POWER_OFF);
	/* Still here: the kernel found no way to power off. */
	if (ioperm(BOCHS_SHUTDOWN_PORT, 1, 1) == 0) {
		for (const char *p = "Shutdown"; *p; p++)
			outb((unsigned char)*p, BOCHS_SHUTDOWN_PORT);
	}
	/* init must not exit (the kernel panics, which Bochs also ends on,
	 * but noisily); the host script kills Bochs on the marker anyway. */
	for (;;)
		pause();
}

/* The console is a serial tty: without this, every "\n" the program writes
 * would reach the host as "\r\n", and binary output would be altered. */
static void console_raw_output(void)
{
	struct termios t;
	if (tcgetattr(1, &t) == 0) {
		t.c_oflag &= ~(tcflag_t)OPOST;
		tcsetattr(1, TCSANOW, &t);
	}
}

/* Reads /args into argv[1..]; returns the count, or -1. */
static int read_args(char *buf, size_t cap, char **argv, int max)
{
	int fd = open("/args", O_RDONLY);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	size_t n = 0;
	ssize_t r;
	while (n < cap && (r = read(fd, buf + n, cap - n)) > 0)
		n += (size_t)r;
	close(fd);
	if (n == cap)
		return -1;
	int argc = 0;
	for (size_t i = 0; i < n; i += strlen(buf + i) + 1) {
		if (argc == max)
			return -1;
		argv[argc++] = buf + i;
	}
	return argc;
}

int main(void)
{
	static char argbuf[1 << 16];
	char *argv[MAX_ARGS + 2] = {"/prog"};

	/* Programs may want /proc (e.g. sysconf for the CPU count); /dev has
	 * the console node from the kernel's built-in initramfs or ours. */
	mkdir("/proc", 0555);
	mount("proc", "/proc", "proc", 0, NULL);
	mkdir("/sys", 0555);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	mkdir("/tmp", 01777);
	mount("tmpfs", "/tmp", "tmpfs", 0, NULL);
	console_raw_output();

	int argc = read_args(argbuf, sizeof argbuf, argv + 1, MAX_ARGS);
	if (argc < 0) {
		printf("\nSMOKE-EMU-BEGIN\ninit: cannot read /args\nSMOKE-EMU-EXIT 125\n");
		fflush(stdout);
		power_off();
	}
	argv[argc + 1] = NULL;

	/* The markers sit on lines of their own: a kernel message may precede
	 * BEGIN, and the program's last line may lack its newline. */
	printf("\nSMOKE-EMU-BEGIN\n");
	fflush(stdout);
	int code;
	pid_t pid = fork();
	if (pid == 0) {
		execv("/prog", argv);
		printf("init: cannot execute /prog: %s\n", strerror(errno));
		fflush(stdout);
		_exit(127);
	}
	int status = 0;
	if (pid < 0) {
		printf("init: fork: %s\n", strerror(errno));
		code = 126;
	} else {
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (WIFEXITED(status))
			code = WEXITSTATUS(status);
		else
			code = 128 + WTERMSIG(status);
	}
	printf("\nSMOKE-EMU-EXIT %d\n", code);
	fflush(stdout);
	power_off();
}
