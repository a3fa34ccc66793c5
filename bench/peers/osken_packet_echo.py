# The os-ken peer of the PACKET_IN benchmark: every PACKET_IN goes straight
# back as a PACKET_OUT with output:NORMAL, the same thing the OFC-stack peer
# does. Run with: osken-manager --ofp-listen-host H --ofp-tcp-listen-port P bench/peers/osken_packet_echo.py
from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3


class PacketEcho(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in(self, ev):
        msg = ev.msg
        datapath = msg.datapath
        ofproto = datapath.ofproto
        parser = datapath.ofproto_parser
        # The table-miss flow asks for whole frames (CONTROLLER:65535), so the
        # frame travels back in the PACKET_OUT rather than by buffer id.
        data = msg.data if msg.buffer_id == ofproto.OFP_NO_BUFFER else None
        datapath.send_msg(
            parser.OFPPacketOut(
                datapath=datapath,
                buffer_id=msg.buffer_id,
                in_port=msg.match['in_port'],
                actions=[parser.OFPActionOutput(ofproto.OFPP_NORMAL)],
                data=data,
            )
        )
