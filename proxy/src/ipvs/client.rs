//! A generic netlink socket to the kernel's IPVS, made inside a named
//! network namespace (a socket belongs to the namespace of the thread
//! that made it, so it is made on a thread that joined it: see
//! [`crate::netns`]). Its calls block: they are netlink round trips to
//! the kernel, run off the async runtime's workers.

use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
    NLM_F_ACK, NLM_F_REQUEST,
};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::GenlMessage;
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};

use super::codec::{self, Dest, Info, IpvsMessage, Reply, Request, Service};

/// Why an exchange failed: the kernel's NACK (its errno), or the socket.
enum Failure {
    Nack(i32),
    Io(String),
}

/// The kernel's IPVS in one network namespace.
pub struct Client {
    socket: Socket,
    family: u16,
    sequence: u32,
}

impl Client {
    /// A socket in the named namespace (None: this process's own) whose
    /// IPVS family resolved; an error says why not (no such namespace,
    /// or no IPVS in its kernel).
    pub async fn open(namespace: Option<&str>) -> Result<Client, String> {
        crate::netns::within_named(namespace, || {
            let mut socket = Socket::new(NETLINK_GENERIC)?;
            socket.bind_auto()?;
            socket.connect(&SocketAddr::new(0, 0))?;
            let mut client = Client {
                socket,
                family: 0,
                sequence: 0,
            };
            client.family = client.resolve().map_err(std::io::Error::other)?;
            Ok(client)
        })
        .await
        .map_err(|e| match namespace {
            Some(name) => format!("IPVS in {name}: {e}"),
            None => format!("IPVS: {e}"),
        })
    }

    /// CTRL_CMD_GETFAMILY for "IPVS".
    fn resolve(&mut self) -> Result<u16, String> {
        let payload = GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(codec::FAMILY_NAME.to_owned())],
        };
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK;
        let mut message = NetlinkMessage::new(
            header,
            NetlinkPayload::InnerMessage(GenlMessage::from_payload(payload)),
        );
        let replies = self.exchange(&mut message).map_err(|e| match e {
            Failure::Nack(errno) => format!(
                "no generic netlink family IPVS ({}): is the ip_vs module loaded?",
                std::io::Error::from_raw_os_error(errno)
            ),
            Failure::Io(e) => e,
        })?;
        replies
            .iter()
            .flat_map(|reply| &reply.payload.nlas)
            .find_map(|nla| match nla {
                GenlCtrlAttrs::FamilyId(id) => Some(*id),
                _ => None,
            })
            .ok_or_else(|| "the kernel named no IPVS family id".to_owned())
    }

    /// Sends `message` numbered anew and collects the kernel's answers
    /// until its ACK (or, for a dump, its DONE); a NACK is an error.
    fn exchange<T>(&mut self, message: &mut NetlinkMessage<T>) -> Result<Vec<T>, Failure>
    where
        T: NetlinkSerializable + NetlinkDeserializable + std::fmt::Debug,
    {
        self.sequence = self.sequence.wrapping_add(1);
        message.header.sequence_number = self.sequence;
        message.finalize();
        self.socket
            .send(&codec::serialize(message), 0)
            .map_err(|e| Failure::Io(format!("netlink send: {e}")))?;
        let mut answers = Vec::new();
        loop {
            let (datagram, _) = self
                .socket
                .recv_from_full()
                .map_err(|e| Failure::Io(format!("netlink receive: {e}")))?;
            for reply in codec::messages::<T>(&datagram).map_err(Failure::Io)? {
                if reply.header.sequence_number != self.sequence {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::InnerMessage(inner) => answers.push(inner),
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok(answers),
                        Some(code) => return Err(Failure::Nack(-code.get())),
                    },
                    _ => {}
                }
            }
        }
    }

    /// Sends `request` and reads what the kernel answers.
    pub fn call(&mut self, request: &Request) -> Result<Vec<Reply>, String> {
        let mut message = codec::message(request, self.family, 0);
        let answers: Vec<GenlMessage<IpvsMessage>> =
            self.exchange(&mut message).map_err(|e| match e {
                Failure::Nack(errno) => codec::error_text(request.command(), errno),
                Failure::Io(e) => e,
            })?;
        answers
            .iter()
            .map(|genl| Reply::parse(&genl.payload))
            .collect()
    }

    /// Every virtual server.
    pub fn services(&mut self) -> Result<Vec<Service>, String> {
        let replies = self.call(&Request::GetServices)?;
        Ok(replies
            .into_iter()
            .filter_map(|r| match r {
                Reply::Service(s) => Some(s),
                _ => None,
            })
            .collect())
    }

    /// The real servers of `service`.
    pub fn dests(&mut self, service: &Service) -> Result<Vec<Dest>, String> {
        let replies = self.call(&Request::GetDests(service))?;
        Ok(replies
            .into_iter()
            .filter_map(|r| match r {
                Reply::Dest(d) => Some(d),
                _ => None,
            })
            .collect())
    }

    /// The version and connection table size.
    pub fn info(&mut self) -> Result<Info, String> {
        match self.call(&Request::GetInfo)?.into_iter().next() {
            Some(Reply::Info(info)) => Ok(info),
            other => Err(format!("GET_INFO answered {other:?}")),
        }
    }
}
