//! Serial devices (a board's USB CDC-ACM port, a USB-UART adapter): opened in raw mode so
//! the frame bytes arrive exactly as sent.
//!
//! A terminal's default ("cooked") mode would turn CR into LF, treat 0x03 as Ctrl-C, 0x04
//! as end-of-file and 0x11/0x13 as flow control, buffer input up to a newline and echo it
//! back to the device: every one of those bytes occurs inside COBS-encoded frames. Raw
//! mode, 8 data bits, no parity, one stop bit, no flow control; the baud rate only matters
//! for a real UART (CDC-ACM runs at USB speed whatever it is set to).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::termios::{self, ControlModes, OptionalActions, SpecialCodeIndex};

use super::ListenError;

/// An open serial device. A device that goes away (unplugged, board reset, the other end
/// of a pseudo-terminal closed) ends the stream like end-of-file.
#[derive(Debug)]
pub struct SerialDevice {
    file: File,
}

impl Read for SerialDevice {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.file.read(buf) {
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => Ok(0),
            other => other,
        }
    }
}

impl AsFd for SerialDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// Opens the character device `path` for reading; a terminal is switched to raw 8N1 at
/// `baud`. Errors name the device and, for a missing device or a permission problem, what
/// to do about it.
pub fn open(path: &Path, baud: u32) -> Result<SerialDevice, ListenError> {
    // Non-blocking only for the open itself: a UART without carrier detect would block
    // in open() until one appears, before CLOCAL below can say to ignore it.
    let flags = OFlags::RDONLY | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd: OwnedFd = rustix::fs::open(path, flags, Mode::empty()).map_err(|e| match e {
        rustix::io::Errno::NOENT | rustix::io::Errno::NODEV | rustix::io::Errno::NXIO => {
            ListenError::DeviceMissing {
                path: path.to_path_buf(),
            }
        }
        rustix::io::Errno::ACCESS | rustix::io::Errno::PERM => ListenError::DevicePermission {
            path: path.to_path_buf(),
            group: owning_group(path).unwrap_or_else(|| "dialout".into()),
        },
        e => ListenError::Read {
            path: path.to_path_buf(),
            source: e.into(),
        },
    })?;
    let serial_err = |what, e: rustix::io::Errno| ListenError::Serial {
        path: path.to_path_buf(),
        what,
        source: e.into(),
    };
    if termios::isatty(&fd) {
        let mut settings = termios::tcgetattr(&fd).map_err(|e| serial_err("read settings", e))?;
        settings.make_raw();
        // make_raw sets CS8 and clears parity; also one stop bit, no hardware flow
        // control, ignore modem control lines, enable the receiver.
        settings.control_modes &= !(ControlModes::CSTOPB | ControlModes::CRTSCTS);
        settings.control_modes |= ControlModes::CLOCAL | ControlModes::CREAD;
        // Block until at least one byte, no inter-byte timer.
        settings.special_codes[SpecialCodeIndex::VMIN] = 1;
        settings.special_codes[SpecialCodeIndex::VTIME] = 0;
        settings
            .set_speed(baud)
            .map_err(|e| serial_err("baud rate", e))?;
        termios::tcsetattr(&fd, OptionalActions::Now, &settings)
            .map_err(|e| serial_err("raw mode", e))?;
    }
    let status = rustix::fs::fcntl_getfl(&fd).map_err(|e| serial_err("file status", e))?;
    rustix::fs::fcntl_setfl(&fd, status - OFlags::NONBLOCK)
        .map_err(|e| serial_err("blocking mode", e))?;
    Ok(SerialDevice {
        file: File::from(fd),
    })
}

/// Name of the group that owns `path`, from /etc/group.
fn owning_group(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let gid = std::fs::metadata(path).ok()?.gid();
    group_name(&std::fs::read_to_string("/etc/group").ok()?, gid)
}

/// The name of group `gid` in the text of /etc/group (`name:password:gid:members`).
fn group_name(etc_group: &str, gid: u32) -> Option<String> {
    etc_group.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == gid && !name.is_empty()).then(|| name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::io::Write;
    use std::os::unix::ffi::OsStrExt;
    use std::path::PathBuf;
    use std::sync::mpsc;
    use std::time::Duration;

    use edge_runtime::frame::{Frame, MAX_WIRE_LEN};
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    use rustix::termios::{InputModes, LocalModes, OutputModes};

    use super::*;
    use crate::listen::{ListenArgs, listen, open_input};

    /// A pseudo-terminal: the master (our "board") and the path of the slave end, which
    /// starts in the default cooked mode like a freshly plugged-in port.
    fn pty() -> (File, PathBuf) {
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        let path = PathBuf::from(OsStr::from_bytes(name.as_bytes()));
        (File::from(master), path)
    }

    fn args(input: PathBuf) -> ListenArgs {
        ListenArgs {
            input,
            csv: None,
            quiet: true,
            baud: 115_200,
            ble: None,
            scan_timeout: 1,
        }
    }

    /// Reads exactly `n` bytes on another thread, failing after a few seconds instead of
    /// hanging if bytes were swallowed.
    fn read_exactly(mut device: SerialDevice, n: usize) -> Vec<u8> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut got = vec![0u8; n];
            let result = device.read_exact(&mut got).map(|_| got);
            let _ = tx.send(result);
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("bytes were swallowed or translated")
            .unwrap()
    }

    #[test]
    fn raw_mode_passes_every_byte_value_unchanged() {
        let (mut master, slave) = pty();
        let device = open(&slave, 115_200).unwrap();
        // Holds the slave open after the reader thread ends, for the echo check.
        let _slave = device.file.try_clone().unwrap();
        let settings = termios::tcgetattr(&device).unwrap();
        assert!(!settings.local_modes.intersects(
            LocalModes::ECHO | LocalModes::ICANON | LocalModes::ISIG | LocalModes::IEXTEN
        ));
        assert!(!settings.input_modes.intersects(
            InputModes::ICRNL | InputModes::INLCR | InputModes::IXON | InputModes::ISTRIP
        ));
        assert!(!settings.output_modes.contains(OutputModes::OPOST));
        assert!(
            settings
                .control_modes
                .contains(ControlModes::CS8 | ControlModes::CREAD)
        );
        assert!(
            !settings
                .control_modes
                .intersects(ControlModes::PARENB | ControlModes::CSTOPB)
        );
        assert_eq!(settings.input_speed(), 115_200);

        // Control characters a cooked terminal acts on, then every byte value.
        let mut sent = vec![0x0d, 0x0a, 0x03, 0x04, 0x11, 0x13, 0x1a, 0x1c, 0x7f, 0x0d];
        sent.extend(0..=255u8);
        master.write_all(&sent).unwrap();
        assert_eq!(read_exactly(device, sent.len()), sent);
        // Nothing echoed back to the board.
        let mut echo = [0u8; 16];
        rustix::fs::fcntl_setfl(&master, OFlags::NONBLOCK).unwrap();
        assert!(matches!(master.read(&mut echo), Err(e) if e.kind() == io::ErrorKind::WouldBlock));
    }

    fn frame(sequence: u32) -> Frame {
        // Fields chosen so the wire bytes hold CR, LF and Ctrl-C: postcard writes small
        // integers as single bytes.
        let mut f = Frame::without_code(sequence, 0x0a, 0x03, 16);
        f.flags = 0x03;
        for (k, j) in [1usize, 7, 13].into_iter().enumerate() {
            f.spike_bits |= 1 << j;
            f.gamma_q15.push(0x0d + k as i16).unwrap();
            f.mu_q.push(-(0x0a + k as i16)).unwrap();
        }
        f.mu_scale = 0.25;
        f
    }

    fn wire(f: &Frame) -> Vec<u8> {
        let mut out = [0u8; MAX_WIRE_LEN];
        let n = f.encode(&mut out).unwrap();
        out[..n].to_vec()
    }

    #[test]
    fn listen_decodes_frames_from_a_serial_device() {
        let (mut master, slave) = pty();
        let input = open_input(&args(slave)).unwrap();
        let frames: Vec<Frame> = (0x0d..0x0d + 20).map(frame).collect();
        let mut stream = b"boot: vsc firmware\r\n".to_vec();
        for f in &frames {
            stream.extend_from_slice(&wire(f));
        }
        for byte in [0x0d, 0x0a, 0x03] {
            assert!(
                wire(&frames[0]).contains(&byte),
                "{byte:#04x} not on the wire"
            );
        }

        // Table rows travel over a channel, so the test can wait for all of them before
        // closing the "board" end.
        struct Lines(mpsc::Sender<Vec<u8>>);
        impl Write for Lines {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let _ = self.0.send(buf.to_vec());
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut table = Lines(tx);
            let mut csv = Vec::new();
            let summary = listen(input, Some(&mut table), Some(&mut csv));
            (summary, csv)
        });
        master.write_all(&stream).unwrap();
        let mut table = Vec::new();
        while table.iter().filter(|&&b| b == b'\n').count() < 1 + frames.len() {
            let piece = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("frames lost or mangled");
            table.extend(piece);
        }
        // The board goes away: the listener ends as at end-of-file.
        drop(master);
        let (summary, csv) = reader.join().unwrap();
        let summary = summary.unwrap();
        assert_eq!(summary.frames, frames.len() as u64);
        assert_eq!(summary.lost_frames, 0);
        assert_eq!(summary.rejected_chunks, 1, "the boot line");
        let csv = String::from_utf8(csv).unwrap();
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let column = |name: &str| header.iter().position(|&h| h == name).unwrap();
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), frames.len());
        for (row, f) in rows.iter().zip(&frames) {
            assert_eq!(row[column("sequence")], f.sequence.to_string());
            assert_eq!(row[column("timestamp_ms")], "10");
            assert_eq!(row[column("flags")], "3");
            // γ of dim 13 = 0x0f / 32768 (third active dim), μ of dim 1 = −10 × 0.25.
            let gamma13: f32 = row[column("gamma_13")].parse().unwrap();
            assert_eq!(gamma13, 15.0 / 32768.0);
            assert_eq!(row[column("mu_1")], "-2.5");
        }
    }

    #[test]
    fn a_missing_device_is_named_with_a_hint() {
        let err = open_input(&args(PathBuf::from("/dev/ttyACM-vsc-missing")))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with("/dev/ttyACM-vsc-missing: no such device"),
            "{err}"
        );
        assert!(err.contains("plugged in"), "{err}");
    }

    #[test]
    fn permission_errors_name_the_owning_group() {
        let etc_group = "root:x:0:\nnobody:x:65534:\ndialout:x:20:alice,bob\nuucp:x:14:\n";
        assert_eq!(group_name(etc_group, 20).as_deref(), Some("dialout"));
        assert_eq!(group_name(etc_group, 14).as_deref(), Some("uucp"));
        assert_eq!(group_name(etc_group, 99), None);
        assert_eq!(group_name("garbage\n::x\n", 0), None);
        let err = ListenError::DevicePermission {
            path: PathBuf::from("/dev/ttyACM0"),
            group: "uucp".into(),
        }
        .to_string();
        assert!(err.starts_with("/dev/ttyACM0: permission denied"), "{err}");
        assert!(err.contains("sudo usermod -aG uucp $USER"), "{err}");
    }

    #[test]
    fn a_character_device_that_is_no_terminal_is_read_as_is() {
        // /dev/null: opened through the serial path, not a tty, immediately at its end.
        let input = open_input(&args(PathBuf::from("/dev/null"))).unwrap();
        let summary = listen(input, None, None).unwrap();
        assert_eq!(summary.frames, 0);
    }
}
